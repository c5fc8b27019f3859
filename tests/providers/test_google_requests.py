"""The Google provider against the fake Google: exact requests, results, partial results, errors."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    ProviderNotConfigured,
    RateLimited,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
)
from imagegw.providers import build_provider
from imagegw.providers.base import GeneratedImage, ImageProvider
from imagegw.providers.google.provider import GeminiApi, GoogleProvider
from imagegw.settings import Settings

from support.fake_google import (
    Content,
    Delay,
    FakeGoogle,
    GoogleError,
    Hangup,
    Predictions,
    Raw,
    imagen_prompt_blocked,
    model_gone,
    permission_denied,
    rate_limited,
    server_error,
)
from support.google_env import api_key_config, google_request, service_account_key, vertex_config

IMAGEN = "google/imagen-4.0"
GEMINI = "google/gemini-3.1-flash-image"
PREDICT_PATH = (
    "/v1/projects/imagegw-test/locations/us-central1/publishers/google/models/"
    "imagen-4.0-generate-001:predict"
)


# One fake, client and provider for the module: building a service-account provider parses an
# RSA key, the slow part. Each test starts from a reset fake.
@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(service_account_key()) as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture(autouse=True)
def _fresh_google(google: FakeGoogle) -> None:
    google.reset()
    google.predict_default = Predictions()
    google.content_default = Content()


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture(scope="module")
async def vertex(google: FakeGoogle, http: httpx.AsyncClient) -> AsyncIterator[ImageProvider]:
    provider = build_provider("google", vertex_config(google), Settings(), http)
    yield provider
    await provider.aclose()


@pytest.fixture
def gemini_api(google: FakeGoogle, http: httpx.AsyncClient) -> ImageProvider:
    return build_provider("google", api_key_config(google), Settings(), http)


def _picture(image: GeneratedImage) -> Image.Image:
    picture = Image.open(io.BytesIO(base64.b64decode(image.b64())))
    picture.load()
    return picture


# ------------------------------------------------------------------------------------- Imagen


@pytest.mark.anyio
async def test_imagen_request_is_exactly_googles_predict_body(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    result = await vertex.generate(
        google_request(
            IMAGEN,
            n=3,
            size="1280x896",
            output_format="jpeg",
            output_compression=80,
            watermark=False,
            person_generation="allow_all",
        )
    )
    (sent,) = google.calls("predict")
    assert sent.path == PREDICT_PATH
    assert sent.header("content-type") == "application/json"
    assert sent.json == {
        "instances": [{"prompt": "a lighthouse at dusk"}],
        "parameters": {
            "sampleCount": 3,
            "aspectRatio": "4:3",
            "addWatermark": False,
            "personGeneration": "allow_all",
            "outputOptions": {"mimeType": "image/jpeg", "compressionQuality": 80},
            "includeRaiReason": True,
        },
    }
    assert len(result.images) == 3
    assert {(_picture(i).format, _picture(i).size) for i in result.images} == {
        ("JPEG", (1280, 896))
    }
    assert (result.size, result.output_format, result.filtered) == ("1280x896", "jpeg", 0)
    assert all(image.revised_prompt is None for image in result.images)


@pytest.mark.anyio
async def test_imagen_minimal_request_sends_the_default_ratio(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    result = await vertex.generate(google_request(IMAGEN))
    assert google.calls("predict")[0].json["parameters"] == {
        "sampleCount": 1,
        "aspectRatio": "1:1",
        "includeRaiReason": True,
    }
    assert (result.size, result.output_format) == ("1024x1024", "png")
    assert result.images[0].media_type == "image/png"


@pytest.mark.parametrize(
    ("size", "ratio", "tier", "produced"),
    [
        ("2816x1536", "16:9", "2K", "2816x1536"),
        ("1792x2560", "3:4", "2K", "1792x2560"),
        ("1792x1024", "16:9", None, "1408x768"),  # the product's mapped sizes, at 1K
        ("1024x1792", "9:16", None, "768x1408"),
    ],
)
@pytest.mark.anyio
async def test_imagen_sizes_become_ratio_and_tier_and_the_real_size_is_reported(
    google: FakeGoogle,
    vertex: ImageProvider,
    size: str,
    ratio: str,
    tier: str | None,
    produced: str,
) -> None:
    result = await vertex.generate(google_request(IMAGEN, size=size))
    parameters = google.calls("predict")[0].json["parameters"]
    assert parameters["aspectRatio"] == ratio
    assert parameters.get("sampleImageSize") == tier
    assert result.size == produced
    assert f"{_picture(result.images[0]).size[0]}x{_picture(result.images[0]).size[1]}" == produced


@pytest.mark.anyio
async def test_imagen_fast_never_sends_a_tier(google: FakeGoogle, vertex: ImageProvider) -> None:
    await vertex.generate(google_request("google/imagen-4.0-fast", size="1408x768"))
    (sent,) = google.calls("predict")
    assert sent.path.endswith("/models/imagen-4.0-fast-generate-001:predict")
    assert sent.json["parameters"] == {
        "sampleCount": 1,
        "aspectRatio": "16:9",
        "includeRaiReason": True,
    }


@pytest.mark.anyio
async def test_imagen_size_outside_the_table_is_refused_before_any_call(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await vertex.generate(google_request("google/imagen-4.0-fast", size="2048x2048"))
    assert caught.value.param == "size"
    assert "'1408x768'" in caught.value.message  # lists what is accepted
    assert google.requests == []


@pytest.mark.anyio
async def test_imagen_rewritten_prompt_becomes_revised_prompt_and_an_echo_does_not(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    rewrite = "A tall white lighthouse at dusk, warm light in the lantern room, calm sea"
    google.enqueue(
        "predict",
        Predictions(enhanced_prompt=rewrite),
        Predictions(enhanced_prompt="a lighthouse at dusk"),
    )
    rewritten = await vertex.generate(google_request(IMAGEN, n=2))
    echoed = await vertex.generate(google_request(IMAGEN))
    assert [image.revised_prompt for image in rewritten.images] == [rewrite, rewrite]
    assert echoed.images[0].revised_prompt is None


@pytest.mark.anyio
async def test_imagen_partially_filtered_delivers_the_rest_and_counts(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    google.enqueue("predict", Predictions(filtered=3))
    result = await vertex.generate(google_request(IMAGEN, n=4))
    assert (len(result.images), result.filtered, result.failed) == (1, 3, 0)


@pytest.mark.parametrize("omit", [True, False])
@pytest.mark.anyio
async def test_imagen_all_filtered_is_a_content_policy_violation(
    google: FakeGoogle, vertex: ImageProvider, omit: bool
) -> None:
    google.enqueue("predict", Predictions(filtered=2, omit_when_empty=omit))
    with pytest.raises(ContentPolicyViolation) as caught:
        await vertex.generate(google_request(IMAGEN, n=2))
    assert (caught.value.status, caught.value.code) == (400, "content_policy_violation")


@pytest.mark.anyio
async def test_imagen_needs_vertex(google: FakeGoogle, gemini_api: ImageProvider) -> None:
    with pytest.raises(ProviderNotConfigured) as caught:
        await gemini_api.generate(google_request(IMAGEN))
    assert "GOOGLE_APPLICATION_CREDENTIALS" in caught.value.message
    assert google.requests == []


# ------------------------------------------------------------------------------------- Gemini


@pytest.mark.anyio
async def test_gemini_on_vertex_is_one_generate_content_call_per_image(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    result = await vertex.generate(google_request(GEMINI, n=3, size="2752x1536"))
    calls = google.calls("generateContent")
    assert len(calls) == 3
    for sent in calls:
        assert sent.path == (
            "/v1/projects/imagegw-test/locations/global/publishers/google/models/"
            "gemini-3.1-flash-image:generateContent"
        )
        assert sent.json == {
            "contents": [{"role": "user", "parts": [{"text": "a lighthouse at dusk"}]}],
            "generationConfig": {
                "responseModalities": ["IMAGE"],
                "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
            },
        }
        assert (sent.header("authorization") or "").startswith("Bearer ya29.fake-")
        assert sent.header("x-goog-api-key") is None
    assert len(result.images) == 3
    assert {_picture(image).size for image in result.images} == {(2752, 1536)}
    assert (result.size, result.output_format, result.filtered, result.failed) == (
        "2752x1536",
        "png",
        0,
        0,
    )
    assert result.usage == {"input_tokens": 21, "output_tokens": 3870, "total_tokens": 3891}


@pytest.mark.anyio
async def test_gemini_api_uses_the_key_header_and_no_tier_for_gemini_25(
    google: FakeGoogle, gemini_api: ImageProvider
) -> None:
    result = await gemini_api.generate(
        google_request("google/gemini-2.5-flash-image", size="1792x1024")
    )
    (sent,) = google.calls("generateContent")
    assert sent.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert sent.header("x-goog-api-key") == google.api_key
    assert sent.header("authorization") is None
    assert google.api_key not in sent.path
    assert sent.json["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    assert result.size == "1344x768"
    assert google.token_requests == []


@pytest.mark.anyio
async def test_gemini_location_and_project_come_from_config(
    google: FakeGoogle, http: httpx.AsyncClient
) -> None:
    config = vertex_config(google, gemini_location="us-east5", location="europe-west4")
    provider = build_provider("google", config, Settings(), http)
    await provider.generate(google_request(GEMINI))
    await provider.generate(google_request(IMAGEN))
    generate, predict = google.calls("generateContent")[0], google.calls("predict")[0]
    assert "/locations/us-east5/" in generate.path
    assert "/locations/europe-west4/" in predict.path
    await provider.aclose()


@pytest.mark.anyio
async def test_gemini_calls_run_in_parallel_but_bounded(
    google: FakeGoogle, http: httpx.AsyncClient
) -> None:
    google.content_default = Delay(0.2, Content())
    api = GeminiApi(google.api_key, google.origin)
    bounded = GoogleProvider(http, vertex=None, gemini_api=api, max_parallel_calls=2)
    result = await bounded.generate(google_request(GEMINI, n=4))
    assert len(result.images) == 4
    assert google.max_in_flight == 2
    google.reset()
    parallel = build_provider("google", api_key_config(google), Settings(), http)
    await parallel.generate(google_request(GEMINI, n=4))
    assert google.max_in_flight == 4


@pytest.mark.anyio
async def test_gemini_skips_thoughts_and_remarks(google: FakeGoogle, vertex: ImageProvider) -> None:
    google.enqueue("content", Content(thought=True, text="Here is your image!"))
    result = await vertex.generate(google_request(GEMINI))
    (image,) = result.images
    assert _picture(image).size == (1024, 1024)  # not the 64x64 thought image
    assert image.revised_prompt is None


@pytest.mark.anyio
async def test_gemini_text_that_rewrites_the_prompt_is_the_revised_prompt(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    rewrite = "A lighthouse at dusk on a rocky headland, its beam sweeping a violet sky"
    google.enqueue("content", Content(text=rewrite))
    result = await vertex.generate(google_request(GEMINI))
    assert result.images[0].revised_prompt == rewrite


@pytest.mark.anyio
async def test_gemini_size_is_read_from_the_image_when_google_ignores_the_tier(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    google.enqueue("content", Content(size="1376x768"))
    result = await vertex.generate(google_request(GEMINI, size="5504x3072"))
    assert google.calls("generateContent")[0].json["generationConfig"]["imageConfig"] == {
        "aspectRatio": "16:9",
        "imageSize": "4K",
    }
    assert result.size == "1376x768"


@pytest.mark.anyio
async def test_gemini_partial_filtering_and_failures_are_counted(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    google.enqueue(
        "content",
        Content(image=False, finish_reason="IMAGE_SAFETY"),
        rate_limited(),
        Content(),
        Content(),
    )
    result = await vertex.generate(google_request(GEMINI, n=4))
    assert (len(result.images), result.filtered, result.failed) == (2, 1, 1)


@pytest.mark.anyio
async def test_gemini_batch_with_an_ambiguous_failure_is_never_marked_retryable(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    # One call refused (429: not billed), the other failed after sending (5xx: maybe billed).
    google.enqueue("content", rate_limited(), server_error())
    with pytest.raises(UpstreamError) as caught:
        await vertex.generate(google_request(GEMINI, n=2))
    assert not caught.value.should_retry


@pytest.mark.parametrize(
    "blocked",
    [
        Content(block_reason="PROHIBITED_CONTENT"),
        Content(image=False, finish_reason="IMAGE_SAFETY"),
        Content(image=False, finish_reason="SAFETY"),
    ],
)
@pytest.mark.anyio
async def test_gemini_all_blocked_is_a_content_policy_violation(
    google: FakeGoogle, vertex: ImageProvider, blocked: Content
) -> None:
    google.content_default = blocked
    with pytest.raises(ContentPolicyViolation) as caught:
        await vertex.generate(google_request(GEMINI, n=3))
    assert caught.value.code == "content_policy_violation"
    assert "3 of 3" in caught.value.message
    assert len(google.calls("generateContent")) == 3


@pytest.mark.anyio
async def test_gemini_answer_without_image_and_without_a_safety_reason_is_a_bad_response(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    google.enqueue("content", Content(image=False, text="I can't draw that.", finish_reason="STOP"))
    with pytest.raises(UpstreamBadResponse):
        await vertex.generate(google_request(GEMINI))


@pytest.mark.anyio
async def test_gemini_calls_still_running_at_the_deadline_do_not_lose_the_others(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    google.enqueue("content", Content(), Delay(5, Content()))
    result = await vertex.generate(google_request(GEMINI, n=2, timeout_seconds=1.0))
    assert (len(result.images), result.failed) == (1, 1)


# ------------------------------------------------------------------------------------- errors


def _google_errors() -> list[Any]:
    return [
        pytest.param(rate_limited("7s"), RateLimited, {"retry-after": "7"}, id="429-retryinfo"),
        pytest.param(
            rate_limited(None, headers={"Retry-After": "12"}),
            RateLimited,
            {"retry-after": "12"},
            id="429-header",
        ),
        pytest.param(rate_limited(None), RateLimited, {"retry-after": "5"}, id="429-default"),
        pytest.param(
            GoogleError(401, "UNAUTHENTICATED", "bad token SECRET-UPSTREAM-DETAIL"),
            UpstreamAuthFailed,
            {},
            id="401",
        ),
        pytest.param(permission_denied(), UpstreamAuthFailed, {}, id="403"),
        pytest.param(model_gone(), ModelUnavailable, {}, id="404"),
        pytest.param(server_error(), UpstreamError, {}, id="500"),
        pytest.param(
            GoogleError(503, "UNAVAILABLE", "overloaded SECRET-UPSTREAM-DETAIL"),
            UpstreamError,
            {},
            id="503",
        ),
        pytest.param(
            GoogleError(400, "FAILED_PRECONDITION", "Billing SECRET-UPSTREAM-DETAIL"),
            UpstreamError,
            {},
            id="400-precondition",
        ),
        pytest.param(
            Raw(b"<html>oops</html>", content_type="text/html"),
            UpstreamBadResponse,
            {},
            id="not-json",
        ),
        pytest.param(Hangup(), UpstreamError, {}, id="hangup"),
    ]


@pytest.mark.parametrize(("reply", "error", "headers"), _google_errors())
@pytest.mark.anyio
async def test_imagen_errors_by_status_and_code(
    google: FakeGoogle,
    vertex: ImageProvider,
    reply: Any,
    error: type[GatewayError],
    headers: dict[str, str],
) -> None:
    google.enqueue("predict", reply)
    with pytest.raises(error) as caught:
        await vertex.generate(google_request(IMAGEN))
    assert type(caught.value) is error
    assert caught.value.headers == headers
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.message


@pytest.mark.parametrize(("reply", "error", "headers"), _google_errors())
@pytest.mark.anyio
async def test_gemini_errors_by_status_and_code(
    google: FakeGoogle,
    vertex: ImageProvider,
    reply: Any,
    error: type[GatewayError],
    headers: dict[str, str],
) -> None:
    google.content_default = reply  # every one of the n calls fails the same way
    with pytest.raises(error) as caught:
        await vertex.generate(google_request(GEMINI, n=2))
    assert type(caught.value) is error
    assert caught.value.headers == headers
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.message


@pytest.mark.anyio
async def test_imagen_safety_refusal_is_a_content_policy_violation(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    google.enqueue("predict", imagen_prompt_blocked())
    with pytest.raises(ContentPolicyViolation) as caught:
        await vertex.generate(google_request(IMAGEN))
    assert (caught.value.status, caught.value.code) == (400, "content_policy_violation")


@pytest.mark.anyio
async def test_other_invalid_argument_passes_googles_reason_on(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    google.enqueue(
        "predict", GoogleError(400, "INVALID_ARGUMENT", "The prompt is longer than 480 tokens.")
    )
    with pytest.raises(InvalidRequest) as caught:
        await vertex.generate(google_request(IMAGEN))
    assert type(caught.value) is InvalidRequest
    assert caught.value.status == 400
    assert "480 tokens" in caught.value.message


@pytest.mark.anyio
async def test_a_wrong_gemini_api_key_is_an_upstream_auth_failure(
    google: FakeGoogle, http: httpx.AsyncClient
) -> None:
    provider = build_provider("google", api_key_config(google, api_key="wrong"), Settings(), http)
    with pytest.raises(UpstreamAuthFailed) as caught:
        await provider.generate(google_request(GEMINI))
    assert caught.value.status == 502
    assert "API key" not in caught.value.message


@pytest.mark.anyio
async def test_imagen_timeout_is_a_504(google: FakeGoogle, vertex: ImageProvider) -> None:
    google.enqueue("predict", Delay(5, Predictions()))
    with pytest.raises(UpstreamTimeout) as caught:
        await vertex.generate(google_request(IMAGEN, timeout_seconds=0.5))
    assert caught.value.status == 504
    assert caught.value.should_retry is False


@pytest.mark.anyio
async def test_gemini_all_calls_timing_out_is_a_504(
    google: FakeGoogle, vertex: ImageProvider
) -> None:
    google.content_default = Delay(5, Content())
    with pytest.raises(UpstreamTimeout):
        await vertex.generate(google_request(GEMINI, n=2, timeout_seconds=0.5))
