"""``client.images.edit(..., stream=True)`` with the official client, unchanged: the gateway
streams OpenAI's ``image_edit.*`` events, relayed from OpenAI's edit stream or rendered by
``local/*``; other providers' streams (completed event only) are in test_google.py.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from e2e.conftest import CLIENT_KEY
from e2e.test_streaming import decoded

from support.edit_images import alpha_mask, gradient
from support.fake_openai import FakeOpenAI, Stream
from support.servers import GatewayServer

PARTIAL = "image_edit.partial_image"
COMPLETED = "image_edit.completed"


def test_openais_edit_stream_is_asked_for_in_the_form_and_relayed_event_by_event(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    source, mask = gradient(64, 48), alpha_mask(64, 48, change=(0, 0, 32, 48))
    hold = threading.Event()
    upstream.enqueue(Stream(hold=hold))

    stream = oai.images.edit(
        model="openai/gpt-image-2",
        image=("room.png", source, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="a cat on the sofa",
        size="1024x1024",
        stream=True,
        partial_images=2,
    )
    events = iter(stream)
    first = next(events)
    # The upstream holds the rest of its stream until told: the first event was passed on
    # before the upstream finished.
    assert first.type == PARTIAL
    assert upstream.streams_finished == 0
    hold.set()
    rest = list(events)

    assert [event.type for event in rest] == [PARTIAL, COMPLETED]
    assert [first.partial_image_index, rest[0].partial_image_index] == [0, 1]  # type: ignore[union-attr]
    completed = rest[-1]
    assert completed.type == COMPLETED
    assert decoded(completed.b64_json).size == (1024, 1024)
    assert completed.usage.output_tokens == 272
    assert completed.model == "openai/gpt-image-2"  # type: ignore[attr-defined]
    (sent,) = upstream.requests
    assert (sent.method, sent.path) == ("POST", "/v1/images/edits")
    assert sent.header("accept") == "text/event-stream"
    assert sent.fields() == {
        "model": "gpt-image-2",
        "prompt": "a cat on the sofa",
        "n": "1",
        "size": "1024x1024",
        "stream": "true",
        "partial_images": "2",
    }
    assert [(f.name, f.data) for f in sent.files()] == [("image", source), ("mask", mask)]


def test_local_edit_streams_real_partials_of_the_edit(oai: openai.OpenAI) -> None:
    source, mask = gradient(64, 48), alpha_mask(64, 48, change=(0, 0, 32, 48))
    edit: dict[str, Any] = {
        "model": "local/canvas",
        "image": ("a.png", source, "image/png"),
        "mask": ("m.png", mask, "image/png"),
        "prompt": "a moon on the left",
    }

    events = list(oai.images.edit(**edit, stream=True, partial_images=2))
    unstreamed = oai.images.edit(**edit)

    assert [event.type for event in events] == [PARTIAL, PARTIAL, COMPLETED]
    images = [decoded(event.b64_json) for event in events]
    assert all(image.size == (64, 48) for image in images)  # the input's size
    colours = [len(image.convert("RGB").getcolors(maxcolors=1 << 24) or []) for image in images]
    assert colours == sorted(set(colours))  # coarse to fine
    # The final event is the very edit a non-streamed call makes.
    assert images[-1].tobytes() == decoded(unstreamed.data[0].b64_json).tobytes()
    assert events[-1].usage is None  # nothing billed, nothing made up


def test_a_json_edit_streams_too(gateway: GatewayServer) -> None:
    png = base64.b64encode(gradient(32, 32)).decode()
    response = httpx.post(
        gateway.base_url + "/v1/images/edits",
        json={
            "model": "local/sketch",
            "prompt": "x",
            "images": [{"image_url": f"data:image/png;base64,{png}"}],
            "stream": True,
            "partial_images": 1,
        },
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        timeout=20,
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-imagegw-model"] == "local/sketch"
    blocks = [block for block in response.text.split("\n\n") if block]
    names = [block.split("\n", 1)[0].removeprefix("event: ") for block in blocks]
    assert names == [PARTIAL, COMPLETED]
    for name, block in zip(names, blocks, strict=True):
        assert json.loads(block.split("\n", 1)[1].removeprefix("data: "))["type"] == name


def test_url_delivery_puts_the_link_in_the_completed_event(oai: openai.OpenAI) -> None:
    events = list(
        oai.images.edit(
            model="local/sketch",
            image=gradient(40, 30),
            prompt="x",
            stream=True,
            response_format="url",
        )
    )

    (completed,) = events
    data: dict[str, Any] = completed.model_dump()
    assert data["type"] == COMPLETED
    assert data["b64_json"] is None
    image = httpx.get(data["url"], timeout=10)
    assert Image.open(io.BytesIO(image.content)).size == (40, 30)


def test_a_failure_mid_stream_raises_in_the_sdk(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    blocked = {
        "message": "blocked",
        "type": "image_generation_user_error",
        "param": None,
        "code": "moderation_blocked",
    }
    upstream.enqueue(Stream(error=blocked))

    stream = oai.images.edit(
        model="openai/gpt-image-2", image=gradient(), prompt="x", stream=True, partial_images=1
    )
    events = iter(stream)
    assert next(events).type == PARTIAL
    with pytest.raises(openai.APIError) as caught:
        next(events)
    assert caught.value.code == "content_policy_violation"


def test_stream_with_n_above_one_is_openais_400(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.edit(model="openai/gpt-image-2", image=gradient(), prompt="x", stream=True, n=2)

    assert caught.value.body == {
        "message": "Streaming is only supported with n=1.",
        "type": "image_generation_user_error",
        "param": "input",
        "code": "unsupported_parameter",
    }
    assert upstream.requests == []


def test_idempotency_key_replays_the_completed_edit_without_editing_again(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.enqueue(Stream())
    options: dict[str, Any] = {
        "model": "openai/gpt-image-2",
        "image": gradient(),
        "prompt": "x",
        "stream": True,
        "partial_images": 1,
        "extra_headers": {"Idempotency-Key": "edit-stream-once"},
    }

    first = list(oai.images.edit(**options))
    raw = oai.images.with_raw_response.edit(**options)

    assert raw.headers["idempotent-replayed"] == "true"
    again = list(raw.parse())
    assert len(upstream.requests) == 1
    assert [event.type for event in again] == [COMPLETED]
    assert again[0].b64_json == first[-1].b64_json
