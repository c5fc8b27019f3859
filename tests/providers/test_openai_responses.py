"""How OpenAIProvider reads what the upstream answers: images, resolved settings, usage, junk."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegw.errors import UpstreamBadResponse, UpstreamError
from imagegw.providers.base import ImageRequest, ImageResult
from imagegw.providers.openai import OpenAIProvider
from providers.conftest import UPSTREAM_KEY, MakeRequest

from support.fake_openai import FakeOpenAI, Images, Raw, encode_image


async def answer_with(payload: Any, request: ImageRequest, *, status: int = 200) -> ImageResult:
    """Run ``request`` against a MockTransport that answers ``payload`` (JSON or bytes)."""

    def handler(_: httpx.Request) -> httpx.Response:
        if isinstance(payload, bytes):
            return httpx.Response(status, content=payload)
        return httpx.Response(status, json=payload)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        provider = OpenAIProvider(http, api_key=UPSTREAM_KEY, base_url="https://x.test/v1")
        return await provider.generate(request)


async def against(fake: FakeOpenAI, request: ImageRequest) -> ImageResult:
    async with httpx.AsyncClient() as http:
        provider = OpenAIProvider(http, api_key=UPSTREAM_KEY, base_url=fake.base_url)
        return await provider.generate(request)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.mark.anyio
async def test_images_and_resolved_settings_come_back_from_a_real_upstream(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    usage = {
        "input_tokens": 12,
        "input_tokens_details": {"text_tokens": 12, "image_tokens": 0},
        "output_tokens": 544,
        "total_tokens": 556,
    }
    upstream.enqueue(Images(usage=usage))
    request = make_request(n=2, size="1536x1024", quality="auto", output_format="jpeg")

    result = await against(upstream, request)

    assert len(result.images) == 2
    for index, image in enumerate(result.images):
        assert image.media_type == "image/jpeg"
        assert image.extension == "jpeg"
        assert image.data() == encode_image("1536x1024", "jpeg", index)
        decoded = Image.open(io.BytesIO(image.data()))
        assert (decoded.format, decoded.size) == ("JPEG", (1536, 1024))
    assert result.size == "1536x1024"
    assert result.quality == "medium"  # what the upstream resolved "auto" to
    assert result.background == "opaque"
    assert result.output_format == "jpeg"
    assert result.usage == usage
    assert result.filtered == 0
    assert len(upstream.requests) == 1


@pytest.mark.anyio
async def test_base64_is_passed_through_untouched(make_request: MakeRequest) -> None:
    png = encode_image("64x64", "png")
    result = await answer_with({"created": 1, "data": [{"b64_json": b64(png)}]}, make_request())
    assert result.images[0].b64() == b64(png)
    assert result.images[0].data() == png
    # No output_format in the answer or the request: PNG, the API's default.
    assert result.images[0].media_type == "image/png"


@pytest.mark.anyio
async def test_media_type_follows_the_answered_output_format(make_request: MakeRequest) -> None:
    webp = encode_image("64x64", "webp")
    payload = {"created": 1, "data": [{"b64_json": b64(webp)}], "output_format": "webp"}
    result = await answer_with(payload, make_request())
    assert result.images[0].media_type == "image/webp"
    assert result.output_format == "webp"


@pytest.mark.anyio
async def test_revised_prompt_is_kept(make_request: MakeRequest) -> None:
    payload = {
        "created": 1,
        "data": [{"b64_json": b64(encode_image("8x8", "png")), "revised_prompt": "a calm sea"}],
    }
    result = await answer_with(payload, make_request())
    assert result.images[0].revised_prompt == "a calm sea"


@pytest.mark.anyio
async def test_fewer_images_than_asked_are_reported_as_filtered(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(Images(count=1))
    result = await against(upstream, make_request(n=3))
    assert len(result.images) == 1
    assert result.filtered == 2


@pytest.mark.anyio
async def test_more_images_than_asked_is_a_bad_response(make_request: MakeRequest) -> None:
    item = {"b64_json": b64(encode_image("8x8", "png"))}
    with pytest.raises(UpstreamBadResponse) as caught:
        await answer_with({"created": 1, "data": [item, item, item]}, make_request(n=2))
    assert caught.value.status == 502


@pytest.mark.anyio
@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"created": 1}, id="no-data"),
        pytest.param({"created": 1, "data": []}, id="empty-data"),
        pytest.param({"created": 1, "data": "nope"}, id="data-not-a-list"),
        pytest.param({"created": 1, "data": [{"url": "https://x/1.png"}]}, id="url-not-b64"),
        pytest.param({"created": 1, "data": [{"b64_json": "abc"}]}, id="not-base64"),
        pytest.param({"created": 1, "data": [{"b64_json": ""}]}, id="empty-base64"),
        pytest.param([1, 2, 3], id="json-array"),
        pytest.param(b"\x89PNG\r\n\x1a\n garbage", id="binary"),
        pytest.param(b'{"created": 1, "data": [{"b64_json": "iVBO', id="cut-json"),
    ],
)
async def test_malformed_success_answers_are_bad_responses(
    make_request: MakeRequest, payload: Any
) -> None:
    with pytest.raises(UpstreamBadResponse) as caught:
        await answer_with(payload, make_request())
    assert caught.value.status == 502
    assert caught.value.code == "upstream_bad_response"


@pytest.mark.anyio
async def test_invalid_json_over_http_is_a_bad_response(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(Raw(b"<html><body>Bad gateway</body></html>", content_type="text/html"))
    with pytest.raises(UpstreamBadResponse) as caught:
        await against(upstream, make_request())
    assert "not JSON" in caught.value.message


@pytest.mark.anyio
async def test_truncated_body_is_an_upstream_failure(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    whole = json.dumps({"created": 1, "data": [{"b64_json": b64(b"x" * 300)}]}).encode()
    upstream.enqueue(Raw(whole[:100], declared_length=len(whole)))
    with pytest.raises(UpstreamError) as caught:
        await against(upstream, make_request())
    assert caught.value.status == 502
    # The request was sent: the caller must not be told it is safe to repeat.
    assert caught.value.should_retry is False


@pytest.mark.anyio
async def test_concurrent_requests_share_one_client(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    sizes = ["1024x1024", "1536x1024", "1024x1536", "1024x1024", "1536x1024"]
    async with httpx.AsyncClient() as http:
        provider = OpenAIProvider(http, api_key=UPSTREAM_KEY, base_url=upstream.base_url)
        results = await asyncio.gather(
            *(
                provider.generate(make_request(prompt=f"picture {i}", n=1 + i % 2, size=size))
                for i, size in enumerate(sizes)
            )
        )
    assert len(upstream.requests) == len(sizes)
    assert sorted(r.json["prompt"] for r in upstream.requests) == [
        f"picture {i}" for i in range(len(sizes))
    ]
    for i, (size, result) in enumerate(zip(sizes, results, strict=True)):
        assert len(result.images) == 1 + i % 2
        assert result.size == size
        width, height = (int(side) for side in size.split("x"))
        assert Image.open(io.BytesIO(result.images[0].data())).size == (width, height)
