"""POST /v1/images/edits through the API with the offline local models, and every bad input."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from api_support import GENERATIONS, assert_error, client_for
from fastapi.testclient import TestClient
from PIL import Image

from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from conftest import API_KEY, AUTH
from support.edit_images import alpha_mask, encoded, gradient, noise, png_declaring, solid
from support.fakes import FakeClock

EDITS = "/v1/images/edits"


def _open(item: dict[str, Any]) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(item["b64_json"], validate=True)))
    image.load()
    return image


def _edit(client: TestClient, files: list[tuple[str, Any]], **fields: Any) -> Any:
    data = {"model": "local/sketch", "prompt": "paint a moon", **fields}
    return client.post(EDITS, data=data, files=files, headers=AUTH)


def _png(name: str, data: bytes) -> tuple[str, bytes, str]:
    return (name, data, "image/png")


# ------------------------------------------------------------------------------ working edits


def test_the_masked_area_is_repainted_and_the_rest_kept_bit_for_bit(client: TestClient) -> None:
    source = gradient(64, 48)
    mask = alpha_mask(64, 48, change=(8, 8, 40, 32))

    response = _edit(client, [("image", _png("a.png", source)), ("mask", _png("m.png", mask))])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["size"] == "64x48"  # an edit keeps the input's size unless asked otherwise
    assert body["model"] == "local/sketch"
    edited = _open(body["data"][0]).convert("RGB")
    original = Image.open(io.BytesIO(source)).convert("RGB")
    changed = 0
    for y in range(48):
        for x in range(64):
            inside = 8 <= x < 40 and 8 <= y < 32
            if not inside:
                assert edited.getpixel((x, y)) == original.getpixel((x, y)), (x, y)
            elif edited.getpixel((x, y)) != original.getpixel((x, y)):
                changed += 1
    assert changed > 32 * 24 // 2  # the box was really repainted


def test_the_same_edit_gives_the_same_bytes(client: TestClient) -> None:
    files = [("image", _png("a.png", gradient()))]
    first = _edit(client, files).json()["data"][0]["b64_json"]
    second = _edit(client, files).json()["data"][0]["b64_json"]
    other = _edit(client, files, prompt="paint a sun").json()["data"][0]["b64_json"]

    assert first == second
    assert first != other


def test_several_images_as_image_array_and_a_size(client: TestClient) -> None:
    files = [
        ("image[]", _png("a.png", solid(64, 64, (200, 0, 0)))),
        ("image[]", ("b.jpg", solid(32, 32, (0, 200, 0), "JPEG"), "image/jpeg")),
        ("image[]", ("c.webp", solid(32, 32, (0, 0, 200), "WEBP"), "image/webp")),
    ]

    response = _edit(client, files, size="256x256", n="2", output_format="webp")

    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["data"]) == 2
    assert body["size"] == "256x256"
    assert all(_open(item).format == "WEBP" for item in body["data"])


def test_json_form_with_a_data_url_and_response_format_url(client: TestClient) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(gradient()).decode()

    response = client.post(
        EDITS,
        json={
            "model": "local/canvas",
            "prompt": "paint a moon",
            "images": [{"image_url": data_url}],
            "mask": {
                "image_url": "data:image/png;base64,"
                + base64.b64encode(alpha_mask(change=(0, 0, 10, 10))).decode()
            },
            "response_format": "url",
            "n": None,
        },
        headers=AUTH,
    )

    assert response.status_code == 200, response.text
    url = response.json()["data"][0]["url"]
    assert client.get(url).status_code == 200


def test_an_earlier_answers_link_is_read_from_storage_not_fetched(client: TestClient) -> None:
    generated = client.post(
        GENERATIONS,
        json={
            "model": "local/sketch",
            "prompt": "a fox",
            "size": "256x256",
            "response_format": "url",
        },
        headers=AUTH,
    ).json()
    link = generated["data"][0]["url"]  # http://testserver/...: not reachable over a network

    response = client.post(
        EDITS,
        json={"model": "local/sketch", "prompt": "add a hat", "images": [{"image_url": link}]},
        headers=AUTH,
    )

    assert response.status_code == 200, response.text
    assert response.json()["size"] == "256x256"


def test_a_tampered_link_of_ours_is_a_400_naming_it(client: TestClient) -> None:
    generated = client.post(
        GENERATIONS,
        json={"model": "local/sketch", "prompt": "a fox", "response_format": "url"},
        headers=AUTH,
    ).json()
    link = generated["data"][0]["url"].replace("signature=", "signature=0")

    response = client.post(
        EDITS,
        json={"model": "local/sketch", "prompt": "x", "images": [{"image_url": link}]},
        headers=AUTH,
    )

    assert_error(response, 400, code="invalid_link", param="images[0].image_url")


def test_models_publish_their_edit_capabilities(client: TestClient) -> None:
    models = {
        m["id"]: m["capabilities"] for m in client.get("/v1/models", headers=AUTH).json()["data"]
    }

    assert models["local/sketch"]["edits"] == {
        "max_input_images": 16,
        "mask": True,
        "mask_required": False,
        "input_fidelities": [],
    }
    assert models["local/sketch"]["generations"] is True
    assert models["google/gemini-3.1-flash-image"]["edits"]["mask"] is False
    assert models["openai/gpt-image-1-mini"]["edits"]["input_fidelities"] == ["low"]
    assert models["local/classic"]["edits"] is None


# ------------------------------------------------------------------------------ refused edits


def test_variations_are_retired_with_a_pointer_to_edits(client: TestClient) -> None:
    response = client.post(
        "/v1/images/variations", files=[("image", _png("a.png", solid()))], headers=AUTH
    )

    message = assert_error(response, 410, code="endpoint_retired")
    assert "/v1/images/edits" in message


def test_a_model_that_does_not_edit_is_named(client: TestClient) -> None:
    response = _edit(client, [("image", _png("a.png", solid()))], model="local/classic")

    message = assert_error(response, 400, code="model_does_not_edit", param="model")
    assert "local/sketch" in message


def test_a_mask_for_a_model_without_masks_is_refused_naming_it(client: TestClient) -> None:
    response = _edit(
        client,
        [
            ("image", _png("a.png", solid())),
            ("mask", _png("m.png", alpha_mask(change=(0, 0, 1, 1)))),
        ],
        model="google/gemini-3.1-flash-image",
    )

    assert_error(response, 400, code="unsupported_parameter", param="mask")


def test_more_images_than_the_model_takes(client: TestClient) -> None:
    files = [("image[]", _png(f"{i}.png", solid())) for i in range(4)]

    response = _edit(client, files, model="google/gemini-2.5-flash-image")

    message = assert_error(response, 400, code="too_many_images", param="image")
    assert "at most 3" in message


def test_seventeen_images_are_refused_before_reading_them(client: TestClient) -> None:
    files = [("image[]", _png(f"{i}.png", solid(8, 8))) for i in range(17)]

    response = _edit(client, files)
    beyond_the_parser = _edit(client, [*files, ("mask", _png("m.png", solid(8, 8)))])

    assert_error(response, 400, code="invalid_value", param="image")
    assert_error(beyond_the_parser, 400, code="invalid_multipart")


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"input_fidelity": "high"}, "unsupported_parameter", "input_fidelity"),
        ({"n": "two"}, "invalid_type", "n"),
        ({"stream": "yes"}, "invalid_type", "stream"),
        # OpenAI's own rule for streams, as for generations.
        ({"stream": "true", "n": "2"}, "unsupported_parameter", "input"),
        ({"stream": "true", "partial_images": "4"}, "invalid_value", "partial_images"),
        ({"partial_images": "1"}, "invalid_value", "partial_images"),
        ({"style": "vivid"}, "unknown_parameter", "style"),
        ({"size": "999x999"}, "invalid_value", "size"),
        ({"prompt": ""}, "invalid_value", "prompt"),
    ],
)
def test_bad_parameters_are_400s_naming_them(
    client: TestClient, fields: dict[str, str], code: str, param: str
) -> None:
    response = _edit(client, [("image", _png("a.png", solid()))], **fields)

    assert_error(response, 400, code=code, param=param)


def test_text_where_a_file_belongs(client: TestClient) -> None:
    response = client.post(
        EDITS,
        data={"model": "local/sketch", "prompt": "x", "image": "cat.png"},
        files=[("mask", _png("m.png", alpha_mask(change=(0, 0, 1, 1))))],
        headers=AUTH,
    )

    assert_error(response, 400, code="invalid_type", param="image")


def test_a_form_without_files_is_not_an_edit(client: TestClient) -> None:
    response = client.post(
        EDITS, data={"model": "local/sketch", "prompt": "x", "image": "cat.png"}, headers=AUTH
    )

    assert_error(response, 415, code="unsupported_media_type")


def test_a_file_where_text_belongs(client: TestClient) -> None:
    response = client.post(
        EDITS,
        data={"model": "local/sketch"},
        files=[("image", _png("a.png", solid())), ("prompt", _png("p.txt", b"a moon"))],
        headers=AUTH,
    )

    assert_error(response, 400, code="invalid_type", param="prompt")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"#!/bin/sh\necho not an image\n", "invalid_image_format"),
        (encoded(Image.new("RGB", (8, 8)), "GIF"), "invalid_image_format"),
        (png_declaring(60_000, 60_000), "image_too_large"),
        (noise(64, 64)[:3000], "invalid_image"),
    ],
    ids=["script", "gif", "bomb", "truncated"],
)
def test_hostile_files_are_refused_by_content(client: TestClient, data: bytes, code: str) -> None:
    # Named and typed as a PNG: neither is believed.
    response = _edit(client, [("image", _png("cat.png", solid())), ("image", _png("x.png", data))])

    assert_error(response, 400, code=code, param="image[1]")


def test_a_mask_of_the_wrong_size_or_without_alpha(client: TestClient) -> None:
    image = ("image", _png("a.png", solid(64, 48)))
    for mask in (alpha_mask(32, 32, change=(0, 0, 4, 4)), solid(64, 48)):
        response = _edit(client, [image, ("mask", _png("m.png", mask))])
        assert_error(response, 400, code="invalid_mask", param="mask")


def test_wrong_content_type_is_a_415(client: TestClient) -> None:
    response = client.post(
        EDITS, content=b"prompt=x", headers={**AUTH, "content-type": "text/plain"}
    )

    assert_error(response, 415, code="unsupported_media_type")


def test_a_malformed_multipart_body_is_a_400(client: TestClient) -> None:
    response = client.post(
        EDITS,
        content=b"--abc\r\nContent-Disposition: form-data\r\n\r\nx\r\n--abc--\r\n",
        headers={**AUTH, "content-type": "multipart/form-data; boundary=abc"},
    )

    assert_error(response, 400, code="invalid_multipart")


@pytest.mark.parametrize(
    ("document", "code", "param"),
    [
        ({"prompt": "x"}, "missing_required_parameter", "images"),
        ({"prompt": "x", "images": "a.png"}, "invalid_type", "images"),
        (
            {"prompt": "x", "images": [{"image_url": "a", "file_id": "b"}]},
            "invalid_value",
            "images[0]",
        ),
        ({"prompt": "x", "images": [{"url": "a"}]}, "unknown_parameter", "images[0].url"),
        ({"prompt": "x", "image": "a"}, "unknown_parameter", "image"),
        (
            {"prompt": "x", "images": [{"file_id": "file-nope"}]},
            "file_not_found",
            "images[0].file_id",
        ),
    ],
)
def test_bad_json_edits(
    client: TestClient, document: dict[str, Any], code: str, param: str
) -> None:
    response = client.post(EDITS, json={"model": "local/sketch", **document}, headers=AUTH)

    assert_error(response, 400, code=code, param=param)


def _limited_client(tmp_path: Path, **limits: Any) -> Any:
    settings = Settings(
        api_keys=API_KEY,
        local_storage_dir=tmp_path / "images",
        url_signing_secret="test-signing-secret",
        **limits,
    )
    return client_for(Runtime(settings, clock=FakeClock()))


def test_oversized_files_and_bodies_are_413s(tmp_path: Path) -> None:
    with _limited_client(tmp_path, edit_max_image_bytes=2048, edit_max_total_bytes=4096) as client:
        response = _edit(client, [("image", _png("a.png", noise(40, 40)))])
        assert_error(response, 413, code="payload_too_large", param="image")
        files = [("image[]", _png(f"{i}.png", solid(16, 16))) for i in range(16)]
        response = _edit(client, files)
        assert response.status_code == 200, response.text
    with _limited_client(tmp_path, edit_max_body_bytes=4096) as client:
        response = _edit(client, [("image", _png("a.png", noise(40, 40)))])
        message = assert_error(response, 413, code="payload_too_large")
        assert "/v1/images/uploads" in message


def test_the_total_of_all_inputs_is_limited(tmp_path: Path) -> None:
    image = noise(40, 40)
    with _limited_client(
        tmp_path, edit_max_image_bytes=len(image) + 10, edit_max_total_bytes=len(image) * 2
    ) as client:
        response = _edit(client, [("image[]", _png(f"{i}.png", image)) for i in range(3)])

    assert_error(response, 413, code="payload_too_large", param="image")


# ------------------------------------------------------------------------------ SSRF


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = solid()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""


@pytest.fixture
def image_host() -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 that would hand out an image to anyone who asked."""
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_urls_elsewhere_are_not_fetched_unless_allowed(
    client: TestClient, image_host: tuple[str, list[str]]
) -> None:
    address, hits = image_host
    response = client.post(
        EDITS,
        json={
            "model": "local/sketch",
            "prompt": "x",
            "images": [{"image_url": f"http://{address}/cat.png"}],
        },
        headers=AUTH,
    )

    message = assert_error(response, 400, code="image_url_not_allowed", param="images[0].image_url")
    assert "/v1/images/uploads" in message
    assert hits == []


def test_s3_references_are_for_events_not_for_http_callers(client: TestClient) -> None:
    # Over HTTP an image of the bucket is read only through a link the gateway signed.
    response = client.post(
        EDITS,
        json={
            "model": "local/sketch",
            "prompt": "x",
            "images": [{"image_url": "s3://imagegw-images/images/" + "0" * 32 + ".png"}],
        },
        headers=AUTH,
    )

    message = assert_error(response, 400, code="image_url_not_allowed", param="images[0].image_url")
    assert "events" in message


@pytest.mark.parametrize(
    "template",
    [
        "http://{address}/cat.png",
        "https://{address}/cat.png",
        "https://localhost:{port}/cat.png",
        "https://[::1]:{port}/cat.png",
        "https://127.9.9.9:{port}/cat.png",
    ],
)
def test_even_when_allowed_loopback_and_plain_http_are_never_fetched(
    tmp_path: Path, image_host: tuple[str, list[str]], template: str
) -> None:
    address, hits = image_host
    url = template.format(address=address, port=address.rsplit(":", 1)[1])
    with _limited_client(tmp_path, edit_fetch_https_urls=True) as client:
        response = client.post(
            EDITS,
            json={
                "model": "local/sketch",
                "prompt": "x",
                "images": [{"image_url": url}],
                "mask": None,
            },
            headers=AUTH,
        )

    assert_error(response, 400, code="image_url_not_allowed", param="images[0].image_url")
    assert hits == []
