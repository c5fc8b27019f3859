"""Edits on the wire: OpenAI's multipart form and Gemini's inline parts, checked by the fakes."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from imagegw.catalog import load_catalog
from imagegw.errors import InvalidValue
from imagegw.generation.input_images import InputLimits, inspect_image
from imagegw.providers import build_provider
from imagegw.providers.base import ImageRequest, ImageResult
from imagegw.providers.bfl.provider import BflProvider
from imagegw.providers.bfl.task import Endpoint, Polling
from imagegw.providers.inputs import InputImage
from imagegw.providers.openai import OpenAIProvider
from imagegw.settings import Settings
from providers.conftest import UPSTREAM_KEY, MakeRequest

from support.edit_images import alpha_mask, gradient, solid
from support.fake_bfl import FakeBfl
from support.fake_google import Content, FakeGoogle
from support.fake_openai import Error, FakeOpenAI, Images
from support.google_env import api_key_config, google_request, service_account_key

LIMITS = InputLimits(max_bytes=10**7, max_total_bytes=10**8, max_pixels=10**8)


def _input(data: bytes, param: str = "image") -> InputImage:
    return inspect_image(data, param=param, limits=LIMITS)


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(expected_key=UPSTREAM_KEY) as fake:
        yield fake
    assert fake.handler_errors == []


async def _openai(upstream: FakeOpenAI, request: object) -> object:
    async with httpx.AsyncClient() as http:
        provider = OpenAIProvider(http, api_key=UPSTREAM_KEY, base_url=upstream.base_url)
        return await provider.generate(request)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_one_image_goes_to_openai_as_the_image_field_with_every_parameter(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    image = _input(gradient(64, 48))
    request = make_request(
        "openai/gpt-image-1.5",
        prompt="add a red hat",
        n=2,
        size="1024x1536",
        quality="high",
        background="opaque",
        output_format="jpeg",
        output_compression=80,
        user="u-1",
        images=(image,),
        input_fidelity="high",
    )

    result = await _openai(upstream, request)

    (sent,) = upstream.requests
    assert (sent.method, sent.path) == ("POST", "/v1/images/edits")
    assert sent.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert sent.header("content-type").startswith("multipart/form-data; boundary=")
    assert sent.fields() == {
        "model": "gpt-image-1.5",
        "prompt": "add a red hat",
        "n": "2",
        "size": "1024x1536",
        "quality": "high",
        "background": "opaque",
        "output_format": "jpeg",
        "output_compression": "80",
        "user": "u-1",
        "input_fidelity": "high",
    }
    (file,) = sent.files()
    assert (file.name, file.filename, file.content_type) == ("image", "image-0.png", "image/png")
    assert file.data == image.data
    assert len(result.images) == 2  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_several_images_go_as_image_array_in_order_and_the_mask_unchanged(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    images = (
        _input(gradient(64, 48)),
        _input(solid(32, 32, image_format="JPEG")),
        _input(solid(16, 16, image_format="WEBP")),
    )
    mask = _input(alpha_mask(64, 48, change=(0, 0, 16, 16)), "mask")
    request = make_request(
        "openai/gpt-image-2", prompt="combine", images=images, mask=mask, moderation="low"
    )

    await _openai(upstream, request)

    (sent,) = upstream.requests
    assert [(f.name, f.filename, f.content_type) for f in sent.files()] == [
        ("image[]", "image-0.png", "image/png"),
        ("image[]", "image-1.jpg", "image/jpeg"),
        ("image[]", "image-2.webp", "image/webp"),
        ("mask", "mask.png", "image/png"),
    ]
    assert [f.data for f in sent.files()] == [*(i.data for i in images), mask.data]
    # moderation is not a multipart edit field; response_format is never sent.
    assert sent.fields() == {"model": "gpt-image-2", "prompt": "combine", "n": "1"}


@pytest.mark.anyio
async def test_an_openai_edit_refusal_keeps_its_param(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    from imagegw.errors import InvalidRequest

    upstream.enqueue(
        Error(400, "Invalid image file.", code="invalid_image_file", param="image"), Images()
    )
    request = make_request("openai/gpt-image-2", images=(_input(gradient()),))

    with pytest.raises(InvalidRequest) as caught:
        await _openai(upstream, request)

    assert (caught.value.param, caught.value.code) == ("image", "invalid_image_file")
    assert len(upstream.requests) == 1  # a refused edit is not sent again


# ------------------------------------------------------------------------------------- Gemini


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(service_account_key()) as fake:
        fake.content_default = Content()
        yield fake
    assert fake.handler_errors == []


@pytest.mark.anyio
async def test_gemini_gets_the_images_as_inline_parts_before_the_prompt(
    google: FakeGoogle,
) -> None:
    images = (_input(gradient(64, 48)), _input(solid(20, 10, image_format="JPEG")))
    request = google_request(
        "google/gemini-3.1-flash-image", prompt="put the cat in the room", images=images
    )

    async with httpx.AsyncClient() as http:
        provider = build_provider("google", api_key_config(google), Settings(), http)
        result = await provider.generate(request)

    (sent,) = google.calls("generateContent")
    assert sent.json["contents"] == [
        {
            "role": "user",
            "parts": [
                {
                    "inlineData": {
                        "mimeType": "image/png",
                        "data": base64.b64encode(images[0].data).decode(),
                    }
                },
                {
                    "inlineData": {
                        "mimeType": "image/jpeg",
                        "data": base64.b64encode(images[1].data).decode(),
                    }
                },
                {"text": "put the cat in the room"},
            ],
        }
    ]
    # No size asked: no aspect ratio, so Gemini keeps the input's.
    assert "aspectRatio" not in sent.json["generationConfig"]["imageConfig"]
    assert len(result.images) == 1


@pytest.mark.anyio
async def test_a_gemini_edit_with_a_size_keeps_the_ratio_it_asks_for(google: FakeGoogle) -> None:
    request = google_request(
        "google/gemini-3.1-flash-image", size="1792x1024", images=(_input(gradient()),)
    )

    async with httpx.AsyncClient() as http:
        provider = build_provider("google", api_key_config(google), Settings(), http)
        await provider.generate(request)

    (sent,) = google.calls("generateContent")
    assert sent.json["generationConfig"]["imageConfig"] == {
        "aspectRatio": "16:9",
        "imageSize": "1K",
    }


# ------------------------------------------------------------------------------------- BFL


@pytest.fixture
def bfl() -> Iterator[FakeBfl]:
    with FakeBfl() as fake:
        yield fake
    assert fake.handler_errors == []


def _bfl_request(model: str, **params: Any) -> ImageRequest:
    spec = load_catalog().get(model)  # FLUX 3.1 is disabled by default: built from its entry
    assert spec is not None
    return ImageRequest(
        spec=spec, upstream_model=spec.upstream_model, n=1, timeout_seconds=10.0, **params
    )


async def _bfl(bfl: FakeBfl, request: ImageRequest) -> ImageResult:
    fast = Polling(first_delay=0.01, factor=1.5, max_delay=0.05)
    async with httpx.AsyncClient() as http:
        provider = BflProvider(http, Endpoint(httpx.URL(bfl.origin), bfl.api_key), polling=fast)
        return await provider.generate(request)


@pytest.mark.anyio
async def test_flux_2_gets_numbered_input_images_and_keeps_the_input_shape(
    bfl: FakeBfl,
) -> None:
    images = (_input(gradient(64, 48)), _input(solid(32, 32, image_format="JPEG")))

    await _bfl(bfl, _bfl_request("bfl/flux-2-pro", prompt="the cat on the sofa", images=images))

    (submit,) = bfl.submits()
    assert submit.json == {
        "prompt": "the cat on the sofa",
        "input_image": base64.b64encode(images[0].data).decode(),
        "input_image_2": base64.b64encode(images[1].data).decode(),
    }  # no width/height: BFL follows the first image


@pytest.mark.anyio
async def test_flux_3_1_gets_images_and_the_mask_as_white_for_change(bfl: FakeBfl) -> None:
    image = _input(gradient(64, 48))
    mask = _input(alpha_mask(64, 48, change=(16, 8, 48, 40)), "mask")

    await _bfl(
        bfl,
        _bfl_request(
            "bfl/flux-3.1-image", prompt="a moon", size="1024x1024", images=(image,), mask=mask
        ),
    )

    (submit,) = bfl.submits()
    assert submit.json["images"] == [base64.b64encode(image.data).decode()]
    assert (submit.json["width"], submit.json["height"]) == (1024, 1024)
    sent_mask = PILImage.open(io.BytesIO(base64.b64decode(submit.json["mask"])))
    assert sent_mask.mode == "L"
    for y in range(48):
        for x in range(64):
            inside = 16 <= x < 48 and 8 <= y < 40
            assert sent_mask.getpixel((x, y)) == (255 if inside else 0), (x, y)


@pytest.mark.anyio
async def test_flux_3_1_takes_nine_images_with_a_mask_and_says_so(bfl: FakeBfl) -> None:
    images = tuple(_input(solid(8, 8)) for _ in range(10))
    mask = _input(alpha_mask(8, 8, change=(0, 0, 4, 4)), "mask")

    with pytest.raises(InvalidValue) as caught:
        await _bfl(bfl, _bfl_request("bfl/flux-3.1-image", prompt="x", images=images, mask=mask))

    assert (caught.value.code, caught.value.param) == ("too_many_images", "image")
    assert bfl.submits() == []
