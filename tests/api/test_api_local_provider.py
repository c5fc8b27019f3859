"""The offline `local/...` models through the API: real, deterministic images of the right kind."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from api_support import GENERATIONS, assert_error
from fastapi.testclient import TestClient
from PIL import Image

from conftest import AUTH
from support.fakes import FakeClock


def _generate(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post(
        GENERATIONS, json={"model": "local/sketch", "prompt": "a fox", **fields}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-imagegw-model"] == response.json()["model"]
    body: dict[str, Any] = response.json()
    return body


def _decode(item: dict[str, Any]) -> bytes:
    return base64.b64decode(item["b64_json"], validate=True)


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_sketch_returns_n_decodable_pngs_of_the_requested_size(client: TestClient) -> None:
    body = _generate(client, n=3, size="512x512")
    assert len(body["data"]) == 3
    images = [_open(_decode(item)) for item in body["data"]]
    for image in images:
        assert image.format == "PNG"
        assert image.size == (512, 512)
    # Three images of one request are three different pictures.
    assert len({image.tobytes() for image in images}) == 3


@pytest.mark.parametrize(
    ("output_format", "pil_format"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")]
)
def test_output_format_is_the_encoding(
    client: TestClient, output_format: str, pil_format: str
) -> None:
    body = _generate(client, size="256x256", output_format=output_format)
    image = _open(_decode(body["data"][0]))
    assert image.format == pil_format
    assert image.size == (256, 256)
    assert body["output_format"] == output_format


@pytest.mark.parametrize("output_format", ["png", "webp"])
def test_transparent_background_has_an_alpha_channel(
    client: TestClient, output_format: str
) -> None:
    body = _generate(client, size="256x256", background="transparent", output_format=output_format)
    image = _open(_decode(body["data"][0]))
    assert image.mode == "RGBA"
    alpha_low, _ = image.getchannel("A").getextrema()
    assert alpha_low == 0  # some pixels really are transparent
    assert body["background"] == "transparent"


def test_opaque_background_has_no_transparent_pixels(client: TestClient) -> None:
    body = _generate(client, size="256x256", background="opaque")
    image = _open(_decode(body["data"][0]))
    if image.mode == "RGBA":
        assert image.getchannel("A").getextrema() == (255, 255)
    else:
        assert image.mode == "RGB"
    assert body["background"] == "opaque"


def test_same_request_gives_identical_bytes(client: TestClient) -> None:
    first = _generate(client, size="256x256", n=2)
    second = _generate(client, size="256x256", n=2)
    assert [_decode(item) for item in first["data"]] == [_decode(item) for item in second["data"]]


def test_different_prompts_give_different_images(client: TestClient) -> None:
    fox = _open(_decode(_generate(client, size="256x256", prompt="a fox")["data"][0]))
    owl = _open(_decode(_generate(client, size="256x256", prompt="an owl")["data"][0]))
    assert fox.tobytes() != owl.tobytes()


def test_jpeg_compression_is_applied_as_given(client: TestClient) -> None:
    # output_compression 0 is the strongest compression, not "unset": it must give a smaller
    # file than 90, or the request was changed silently.
    strongest = _decode(
        _generate(client, size="512x512", output_format="jpeg", output_compression=0)["data"][0]
    )
    light = _decode(
        _generate(client, size="512x512", output_format="jpeg", output_compression=90)["data"][0]
    )
    assert _open(strongest).format == "JPEG"
    assert len(strongest) < len(light)


@pytest.mark.parametrize("size", ["1280x720", "720x1280", "2048x688"])
def test_canvas_accepts_a_free_size(client: TestClient, size: str) -> None:
    body = _generate(client, model="local/canvas", size=size)
    width, height = (int(side) for side in size.split("x"))
    assert _open(_decode(body["data"][0])).size == (width, height)
    assert body["size"] == size


def test_sketch_refuses_a_free_size(client: TestClient) -> None:
    response = client.post(
        GENERATIONS,
        json={"model": "local/sketch", "prompt": "a fox", "size": "1280x720"},
        headers=AUTH,
    )
    assert_error(response, 400, code="invalid_value", param="size")


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("local/sketch", {"size": "auto", "quality": "auto"}),
        ("local/sketch", {}),
        ("local/canvas", {"size": "auto"}),
        ("local/classic", {}),
    ],
)
def test_resolved_settings_are_never_auto_and_usage_is_absent(
    client: TestClient, model: str, fields: dict[str, str]
) -> None:
    body = _generate(client, model=model, **fields)
    assert body["size"] == "1024x1024"
    assert body["quality"] not in (None, "auto")
    assert body["background"] in ("opaque", "transparent")
    assert body["output_format"] == "png"
    assert "usage" not in body
    assert _open(_decode(body["data"][0])).size == (1024, 1024)


def test_classic_takes_style_and_hd(client: TestClient) -> None:
    body = _generate(client, model="local/classic", style="natural", quality="hd")
    assert body["quality"] == "hd"
    assert _open(_decode(body["data"][0])).format == "PNG"


def test_url_links_serve_the_image_until_they_expire(client: TestClient, clock: FakeClock) -> None:
    inline = _generate(client, size="256x256", n=2, output_format="webp")
    linked = _generate(client, size="256x256", n=2, output_format="webp", response_format="url")
    assert len(linked["data"]) == 2
    for inline_item, item in zip(inline["data"], linked["data"], strict=True):
        assert set(item) == {"url", "expires_at"}
        assert item["expires_at"] == int(clock.now) + 3600
        image = client.get(item["url"])
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/webp"
        assert image.content == _decode(inline_item)
        assert _open(image.content).size == (256, 256)

    clock.now = linked["data"][0]["expires_at"] - 1
    assert client.get(linked["data"][0]["url"]).status_code == 200

    clock.now = linked["data"][0]["expires_at"]
    expired = client.get(linked["data"][0]["url"])
    message = assert_error(expired, 403, code="link_expired")
    assert "expired" in message
    assert expired.content != inline["data"][0]["b64_json"].encode()


def test_links_need_no_api_key_but_a_valid_signature(client: TestClient) -> None:
    linked = _generate(client, size="256x256", response_format="url")
    url = linked["data"][0]["url"]
    assert client.get(url).status_code == 200
    tampered = url.replace("signature=", "signature=0")
    assert_error(client.get(tampered), 403, code="invalid_link")
