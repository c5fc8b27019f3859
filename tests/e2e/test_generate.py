"""The official openai client gets real images through the gateway under uvicorn."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from PIL import Image

from e2e.conftest import CLIENT_KEY, UPSTREAM_KEY, MakeClient, MakeGateway
from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.fake_openai import FakeOpenAI, Images, encode_image
from support.fakes import FakeClock
from support.servers import GatewayServer

USAGE = {
    "input_tokens": 11,
    "input_tokens_details": {"text_tokens": 11, "image_tokens": 0},
    "output_tokens": 3136,
    "total_tokens": 3147,
}


def decode(b64: str | None) -> Image.Image:
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_gpt_image_request_reaches_the_upstream_exactly_and_images_come_back(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.enqueue(Images(usage=USAGE))

    response = oai.images.generate(
        model="openai/gpt-image-1.5",
        prompt="a lighthouse in a storm",
        n=2,
        size="1024x1536",
        quality="high",
        background="transparent",
        output_format="png",
        moderation="low",
        user="u1",
    )

    (sent,) = upstream.requests
    assert sent.method == "POST"
    assert sent.path == "/v1/images/generations"
    assert sent.json == {
        "model": "gpt-image-1.5",
        "prompt": "a lighthouse in a storm",
        "n": 2,
        "size": "1024x1536",
        "quality": "high",
        "background": "transparent",
        "output_format": "png",
        "moderation": "low",
        "user": "u1",
    }
    assert sent.header("content-type") == "application/json"
    # The gateway's own provider key goes upstream; the caller's key never does.
    assert sent.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    everything_sent = repr(sent.raw_headers).encode() + sent.body
    assert CLIENT_KEY.encode() not in everything_sent

    assert len(response.data) == 2
    for index, item in enumerate(response.data):
        image = decode(item.b64_json)
        assert (image.format, image.size, image.mode) == ("PNG", (1024, 1536), "RGBA")
        assert base64.b64decode(item.b64_json or "") == encode_image(
            "1024x1536", "png", index, transparent=True
        )
        assert item.url is None
    assert response.usage is not None
    assert response.usage.model_dump(exclude_none=True) == USAGE
    assert (response.size, response.quality, response.background, response.output_format) == (
        "1024x1536",
        "high",
        "transparent",
        "png",
    )
    assert response.created > 0
    assert response._request_id is not None
    assert response._request_id.startswith("req_")


def test_bare_openai_id_resolves_to_the_same_model(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    raw = oai.images.with_raw_response.generate(
        model="gpt-image-1.5", prompt="a fox", n=1, size="1536x1024", quality="low"
    )
    response = raw.parse()
    assert upstream.requests[0].json == {
        "model": "gpt-image-1.5",
        "prompt": "a fox",
        "n": 1,
        "size": "1536x1024",
        "quality": "low",
    }
    assert decode(response.data[0].b64_json).size == (1536, 1024)
    assert (response.size, response.quality) == ("1536x1024", "low")
    assert raw.headers["x-imagegw-model"] == "openai/gpt-image-1.5"
    assert raw.headers["x-request-id"] == response._request_id


def test_snapshot_ids_reach_the_upstream_pinned(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    oai.images.generate(model="gpt-image-2-2026-04-21", prompt="a boat", size="2048x1152")
    assert upstream.requests[0].json["model"] == "gpt-image-2-2026-04-21"
    assert upstream.requests[0].json["size"] == "2048x1152"


def test_webp_with_compression_round_trip(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    response = oai.images.generate(
        model="openai/gpt-image-1.5",
        prompt="a field of tulips",
        output_format="webp",
        output_compression=55,
        size="1024x1024",
    )
    assert upstream.requests[0].json["output_format"] == "webp"
    assert upstream.requests[0].json["output_compression"] == 55
    image = decode(response.data[0].b64_json)
    assert (image.format, image.size) == ("WEBP", (1024, 1024))
    assert response.output_format == "webp"


def test_fewer_images_than_asked_are_reported(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.enqueue(Images(count=2))
    raw = oai.images.with_raw_response.generate(model="gpt-image-1.5", prompt="cats", n=3)
    response = raw.parse()
    assert len(response.data) == 2
    assert raw.headers["x-imagegw-images-filtered"] == "1"


def test_url_delivery_for_an_openai_model(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    response = oai.images.generate(
        model="openai/gpt-image-1.5",
        prompt="a lighthouse",
        n=2,
        size="1024x1024",
        response_format="url",
    )
    # gpt-image models reject response_format: it must not reach the upstream.
    assert "response_format" not in upstream.requests[0].json
    assert upstream.requests[0].json["n"] == 2

    assert len(response.data) == 2
    for index, item in enumerate(response.data):
        assert item.b64_json is None
        assert item.url is not None
        fetched = httpx.get(item.url)  # a plain GET: no key, the signature is the credential
        assert fetched.status_code == 200
        assert fetched.headers["content-type"] == "image/png"
        assert fetched.content == encode_image("1024x1024", "png", index)
    # The same link through the stdlib, like a browser or curl would follow it.
    url = response.data[0].url
    assert url is not None
    with urllib.request.urlopen(url, timeout=10) as stdlib:
        assert stdlib.read() == encode_image("1024x1024", "png", 0)


def test_a_tampered_link_is_refused(oai: openai.OpenAI) -> None:
    response = oai.images.generate(model="gpt-image-1.5", prompt="a key", response_format="url")
    url = response.data[0].url
    assert url is not None
    parts = urlsplit(url)
    tampered = url.replace("signature=", "signature=0")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(tampered, timeout=10)
    assert caught.value.code == 403
    assert set(json.loads(caught.value.read())["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(f"{parts.scheme}://{parts.netloc}{parts.path}").status_code == 403


def test_local_model_needs_no_upstream(
    make_gateway: MakeGateway, make_client: MakeClient, upstream: FakeOpenAI
) -> None:
    gateway = make_gateway(openai_api_key=None)
    response = make_client(gateway).images.generate(model="local/sketch", prompt="a robot", n=4)
    assert len(response.data) == 4
    images = [decode(item.b64_json) for item in response.data]
    assert {(image.format, image.size) for image in images} == {("PNG", (1024, 1024))}
    assert len({image.tobytes() for image in images}) == 4
    assert (response.size, response.output_format, response.background) == (
        "1024x1024",
        "png",
        "opaque",
    )
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("output_format", "size", "pillow_format"),
    [("jpeg", "512x512", "JPEG"), ("webp", "1536x1024", "WEBP"), ("png", "256x256", "PNG")],
)
def test_local_model_formats_and_sizes(
    oai: openai.OpenAI, output_format: str, size: str, pillow_format: str
) -> None:
    response = oai.images.generate(
        model="local/sketch",
        prompt="a mountain",
        size=size,
        output_format=output_format,  # type: ignore[arg-type]
    )
    image = decode(response.data[0].b64_json)
    width, height = (int(side) for side in size.split("x"))
    assert (image.format, image.size) == (pillow_format, (width, height))
    assert response.output_format == output_format


def test_local_model_url_delivery_serves_the_same_bytes(oai: openai.OpenAI) -> None:
    inline = oai.images.generate(model="local/sketch", prompt="a tree", size="256x256")
    linked = oai.images.generate(
        model="local/sketch", prompt="a tree", size="256x256", response_format="url"
    )
    url = linked.data[0].url
    assert url is not None
    fetched = httpx.get(url)
    assert fetched.headers["content-type"] == "image/png"
    # Deterministic drawing: the link holds exactly what b64_json carried.
    assert fetched.content == base64.b64decode(inline.data[0].b64_json or "")


def test_models_list_through_the_client(oai: openai.OpenAI, gateway: GatewayServer) -> None:
    ids = {model.id for model in oai.models.list()}
    assert {"openai/gpt-image-1.5", "local/sketch", "openai/dall-e-3"} <= ids
    assert oai.models.retrieve("local/sketch").id == "local/sketch"


def test_gateway_configured_only_by_the_openai_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_client: MakeClient
) -> None:
    # The README's promise: point OPENAI_BASE_URL at any OpenAI-compatible server (here one
    # under a path prefix) and the openai/... models are served from it.
    with FakeOpenAI(prefix="/compat/v1", expected_key=UPSTREAM_KEY) as compatible:
        monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", compatible.base_url)
        monkeypatch.setenv("IMAGEGW_API_KEYS", CLIENT_KEY)
        monkeypatch.setenv("IMAGEGW_LOCAL_STORAGE_DIR", str(tmp_path / "env-images"))
        runtime = Runtime(Settings(), clock=FakeClock())
        with GatewayServer(create_app(runtime=runtime)) as gateway:
            response = make_client(gateway).images.generate(
                model="gpt-image-1.5", prompt="a compass", size="1024x1024"
            )
    assert decode(response.data[0].b64_json).size == (1024, 1024)
    (sent,) = compatible.requests
    assert sent.path == "/compat/v1/images/generations"
    assert sent.header("authorization") == f"Bearer {UPSTREAM_KEY}"


@pytest.mark.anyio
async def test_async_client(gateway: GatewayServer, upstream: FakeOpenAI) -> None:
    async with openai.AsyncOpenAI(
        base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20
    ) as client:
        response = await client.images.generate(
            model="openai/gpt-image-1.5", prompt="a kite", n=3, output_format="jpeg"
        )
    assert [decode(item.b64_json).format for item in response.data] == ["JPEG"] * 3
    assert upstream.requests[0].json["n"] == 3
