"""``stream: true`` with the official client: openai.OpenAI -> gateway (uvicorn) -> upstream.

The upstream streams (the fake OpenAI's SSE), renders offline (``local/*``), or fails on the way.
Google's non-streaming models are in test_google.py with their own fake.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from e2e.conftest import CLIENT_KEY, MakeClient, MakeGateway
from imagegw.state.auth import hash_key

from support.fake_openai import FakeOpenAI, Stream, rate_limited
from support.servers import GatewayServer

GPT = "gpt-image-2"


def decoded(b64: str | None) -> Image.Image:
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
    image.load()
    return image


def test_upstream_stream_is_relayed_event_by_event(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    hold = threading.Event()
    upstream.enqueue(Stream(hold=hold))
    stream = oai.images.generate(
        model=GPT, prompt="a lighthouse", stream=True, partial_images=2, size="1024x1024"
    )
    events = iter(stream)
    first = next(events)
    # The upstream is holding the rest of its stream until told: the gateway did not wait for
    # the whole answer before passing the first event on.
    assert first.type == "image_generation.partial_image"
    assert upstream.streams_finished == 0
    hold.set()
    rest = list(events)
    assert [event.type for event in rest] == [
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [first.partial_image_index, rest[0].partial_image_index] == [0, 1]  # type: ignore[union-attr]
    assert first.size == "1024x1024"
    assert decoded(first.b64_json).size == (1024, 1024)
    completed = rest[-1]
    assert completed.type == "image_generation.completed"
    assert decoded(completed.b64_json).format == "PNG"
    assert completed.usage.output_tokens == 272
    assert (completed.size, completed.quality, completed.background, completed.output_format) == (
        "1024x1024",
        "medium",
        "opaque",
        "png",
    )
    assert completed.model == "openai/gpt-image-2"  # type: ignore[attr-defined]
    sent = upstream.requests[0].json
    assert (sent["stream"], sent["partial_images"]) == (True, 2)


def test_the_stream_is_text_event_stream_with_the_gateways_headers(
    gateway: GatewayServer, upstream: FakeOpenAI
) -> None:
    upstream.enqueue(Stream())
    response = httpx.post(
        gateway.base_url + "/v1/images/generations",
        json={"model": GPT, "prompt": "x", "stream": True, "partial_images": 1},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        timeout=20,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-imagegw-model"] == "openai/gpt-image-2"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-request-id"].startswith("req_")
    blocks = [block for block in response.text.split("\n\n") if block]
    names = [block.split("\n", 1)[0] for block in blocks]
    assert names == ["event: image_generation.partial_image", "event: image_generation.completed"]
    for block in blocks:
        data = json.loads(block.split("\n", 1)[1].removeprefix("data: "))
        assert data["type"] == block.split("\n", 1)[0].removeprefix("event: ")


def test_local_model_streams_real_partial_images(oai: openai.OpenAI) -> None:
    events = list(
        oai.images.generate(
            model="local/sketch",
            prompt="a fox",
            stream=True,
            partial_images=2,
            size="512x512",
        )
    )
    assert [event.type for event in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    images = [decoded(event.b64_json) for event in events]
    assert all(image.size == (512, 512) for image in images)
    colours = [len(image.convert("RGB").getcolors(maxcolors=1 << 24) or []) for image in images]
    assert colours == sorted(set(colours))  # coarse to fine
    completed = events[-1]
    assert completed.usage is None  # nothing billed, nothing made up


def test_partial_images_zero_is_the_completed_event_alone(oai: openai.OpenAI) -> None:
    events = list(oai.images.generate(model="local/sketch", prompt="a fox", stream=True))
    assert [event.type for event in events] == ["image_generation.completed"]


def test_url_delivery_puts_the_link_in_the_completed_event(
    oai: openai.OpenAI, gateway: GatewayServer
) -> None:
    events = list(
        oai.images.generate(
            model="local/sketch",
            prompt="a fox",
            stream=True,
            partial_images=1,
            response_format="url",
            size="256x256",
        )
    )
    completed = events[-1]
    assert completed.type == "image_generation.completed"
    data: dict[str, Any] = completed.model_dump()
    assert data["b64_json"] is None
    assert data["expires_at"] > 0
    image = httpx.get(data["url"], timeout=10)
    assert image.status_code == 200
    assert Image.open(io.BytesIO(image.content)).size == (256, 256)


def test_a_failure_mid_stream_raises_in_the_sdk(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.enqueue(
        Stream(
            error={
                "message": "blocked",
                "type": "image_generation_user_error",
                "param": None,
                "code": "moderation_blocked",
            }
        )
    )
    stream = oai.images.generate(model=GPT, prompt="x", stream=True, partial_images=1)
    events = iter(stream)
    assert next(events).type == "image_generation.partial_image"
    with pytest.raises(openai.APIError) as caught:
        next(events)
    assert caught.value.code == "content_policy_violation"


def test_a_cut_upstream_stream_is_an_error_event_not_a_silent_end(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.enqueue(Stream(truncate=True))
    stream = oai.images.generate(model=GPT, prompt="x", stream=True, partial_images=1)
    events = iter(stream)
    assert next(events).type == "image_generation.partial_image"
    with pytest.raises(openai.APIError) as caught:
        next(events)
    assert caught.value.code == "upstream_bad_response"


def test_stream_with_n_above_one_is_openais_400(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=GPT, prompt="x", stream=True, n=2)
    assert caught.value.body == {
        "message": "Streaming is only supported with n=1.",
        "type": "image_generation_user_error",
        "param": "input",
        "code": "unsupported_parameter",
    }
    assert upstream.requests == []


def test_a_refusal_before_the_first_event_is_an_http_error(
    make_gateway: MakeGateway, make_client: MakeClient, upstream: FakeOpenAI
) -> None:
    gateway = make_gateway(upstream_max_attempts=1)
    upstream.enqueue(rate_limited("3"))
    with pytest.raises(openai.RateLimitError) as caught:
        make_client(gateway).images.generate(model=GPT, prompt="x", stream=True)
    assert caught.value.response.headers["retry-after"] == "3"


def test_idempotency_key_replays_a_finished_stream_without_generating_again(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.enqueue(Stream())
    options: dict[str, Any] = {"extra_headers": {"Idempotency-Key": "stream-once"}}
    first = list(
        oai.images.generate(model=GPT, prompt="x", stream=True, partial_images=1, **options)
    )
    raw = oai.images.with_raw_response.generate(
        model=GPT, prompt="x", stream=True, partial_images=1, **options
    )
    assert raw.headers["idempotent-replayed"] == "true"
    again = list(raw.parse())
    assert len(upstream.requests) == 1
    # The answer is kept, not the partial images: a replay is the completed event.
    assert [event.type for event in again] == ["image_generation.completed"]
    assert again[0].b64_json == first[-1].b64_json


def test_streamed_requests_count_against_the_keys_rate(
    make_gateway: MakeGateway, make_client: MakeClient, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.json"
    rated = {"name": "rated", "sha256": hash_key(CLIENT_KEY), "scopes": ["*"], "rate": 1}
    keys.write_text(json.dumps({"keys": [rated]}))
    client = make_client(make_gateway(api_keys=None, api_keys_file=keys))
    assert len(list(client.images.generate(model="local/sketch", prompt="x", stream=True))) == 1
    with pytest.raises(openai.RateLimitError):
        client.images.generate(model="local/sketch", prompt="x", stream=True)
