"""The stability provider against the fake Stability API: the multipart request, answers, errors."""

from __future__ import annotations

import asyncio
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
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.providers import build_provider
from imagegw.providers.stability.provider import StabilityProvider
from imagegw.settings import Settings
from providers.conftest import MakeRequest

from support.fake_stability import (
    API_KEY,
    ContentFiltered,
    FakeStability,
    Generated,
    StabilityError,
    moderated,
    out_of_credits,
)
from support.scripted_http import Delay, Hangup, Raw, Truncated

ULTRA = "stability/stable-image-ultra"
CORE = "stability/stable-image-core"
SD35 = "stability/sd3.5-large"
TURBO = "stability/sd3.5-large-turbo"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def stability() -> Iterator[FakeStability]:
    with FakeStability() as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture(autouse=True)
def _fresh(stability: FakeStability) -> None:
    stability.reset()


@pytest.fixture
async def provider(stability: FakeStability) -> AsyncIterator[StabilityProvider]:
    async with httpx.AsyncClient() as http:
        built = build_provider(
            "stability", {"api_key": API_KEY, "base_url": stability.origin}, Settings(), http
        )
        assert isinstance(built, StabilityProvider)
        yield built


def _picture(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


# ------------------------------------------------------------------------------- the request


@pytest.mark.anyio
async def test_the_request_is_a_multipart_form_with_a_bearer_key(
    stability: FakeStability, provider: StabilityProvider, make_request: MakeRequest
) -> None:
    result = await provider.generate(
        make_request(SD35, size="1024x1792", seed=7, negative_prompt="rain", output_format="webp")
    )
    (sent,) = stability.requests
    assert sent.path == "/v2beta/stable-image/generate/sd3"
    assert sent.header("authorization") == f"Bearer {API_KEY}"
    assert sent.header("accept") == "application/json"
    assert stability.accepted == [
        (
            "sd3",
            {
                "prompt": "a lighthouse at dusk",
                "aspect_ratio": "9:16",
                "model": "sd3.5-large",
                "negative_prompt": "rain",
                "seed": "7",
                "output_format": "webp",
            },
        )
    ]
    (image,) = result.images
    assert image.media_type == "image/webp"
    assert _picture(image.b64()).size == (768, 1344)
    assert (result.size, result.output_format) == ("768x1344", "webp")
    assert result.extra == {"aspect_ratio": "9:16", "seeds": [7]}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("seed", "sent_seeds", "seeds"),
    [
        # n images of one seed are n variations (seed + i), each call its own seed.
        (7, ["7", "8", "9"], [7, 8, 9]),
        # Wrapping skips 0, which would let the model pick.
        (4_294_967_293, ["4294967293", "4294967294", "1"], [4_294_967_293, 4_294_967_294, 1]),
        # 0 is the model's own pick: every call draws its own.
        (0, ["0", "0", "0"], [987654, 987654, 987654]),
    ],
    ids=["seed", "wrapping", "zero"],
)
async def test_n_images_with_a_seed_are_variations_not_copies(
    stability: FakeStability,
    provider: StabilityProvider,
    make_request: MakeRequest,
    seed: int,
    sent_seeds: list[str],
    seeds: list[int],
) -> None:
    result = await provider.generate(make_request(SD35, n=3, seed=seed))
    assert sorted(fields["seed"] for _, fields in stability.accepted) == sorted(sent_seeds)
    # Reported in the order of data, whatever order the calls finished in.
    assert result.extra["seeds"] == seeds
    assert len(result.images) == 3


@pytest.mark.anyio
@pytest.mark.parametrize(("model", "endpoint"), [(ULTRA, "ultra"), (CORE, "core")])
async def test_ultra_and_core_have_their_own_endpoint_and_no_model_field(
    stability: FakeStability,
    provider: StabilityProvider,
    make_request: MakeRequest,
    model: str,
    endpoint: str,
) -> None:
    result = await provider.generate(make_request(model, size="1536x1024"))
    assert stability.accepted == [
        (
            endpoint,
            {"prompt": "a lighthouse at dusk", "aspect_ratio": "3:2", "output_format": "png"},
        )
    ]
    assert result.size == "1216x832"


@pytest.mark.anyio
async def test_a_unicode_prompt_arrives_intact(
    stability: FakeStability, provider: StabilityProvider, make_request: MakeRequest
) -> None:
    prompt = 'un phare "breton" — 灯台 🌊\r\n--not-a-boundary'
    await provider.generate(make_request(TURBO, prompt=prompt))
    assert stability.accepted[0][1]["prompt"] == prompt
    assert stability.accepted[0][1]["model"] == "sd3.5-large-turbo"


# ------------------------------------------------------------------------------- n and filters


@pytest.mark.anyio
async def test_n_is_n_calls_bounded(
    stability: FakeStability, provider: StabilityProvider, make_request: MakeRequest
) -> None:
    stability.default = Delay(0.2, Generated())
    result = await provider.generate(make_request(CORE, n=4))
    assert len(result.images) == 4
    assert len(stability.accepted) == 4
    assert stability.max_in_flight <= 4


@pytest.mark.anyio
async def test_content_filtered_images_are_withheld_never_delivered_blurred(
    stability: FakeStability, provider: StabilityProvider, make_request: MakeRequest
) -> None:
    stability.enqueue(ContentFiltered())
    result = await provider.generate(make_request(CORE, n=2))
    assert len(result.images) == 1
    assert (result.filtered, result.failed) == (1, 0)
    stability.reset(ContentFiltered())
    with pytest.raises(ContentPolicyViolation) as caught:
        await provider.generate(make_request(CORE, n=2))
    assert "CONTENT_FILTERED" in caught.value.message


@pytest.mark.anyio
async def test_a_failed_call_of_a_fan_out_is_reported(
    stability: FakeStability, provider: StabilityProvider, make_request: MakeRequest
) -> None:
    stability.enqueue(StabilityError(500, "internal_error", ["boom"]))
    result = await provider.generate(make_request(CORE, n=3))
    assert len(result.images) == 2
    assert (result.filtered, result.failed) == (0, 1)
    assert len(stability.requests) == 3


# ------------------------------------------------------------------------------- errors


def _error_cases() -> list[Any]:
    return [
        pytest.param(moderated(), ContentPolicyViolation, "content_policy_violation", id="403-mod"),
        pytest.param(
            out_of_credits(), ServiceUnavailable, "upstream_quota_exhausted", id="402-credits"
        ),
        pytest.param(
            StabilityError(401, "unauthorized", ["SECRET-UPSTREAM-DETAIL"]),
            UpstreamAuthFailed,
            "upstream_auth_failed",
            id="401",
        ),
        pytest.param(
            StabilityError(403, "forbidden", ["SECRET-UPSTREAM-DETAIL"]),
            UpstreamAuthFailed,
            "upstream_auth_failed",
            id="403-other",
        ),
        pytest.param(
            StabilityError(400, "bad_request", ["prompt: too long"]),
            InvalidRequest,
            "invalid_request",
            id="400",
        ),
        pytest.param(
            StabilityError(422, "invalid_language", ["English is the only supported language"]),
            InvalidRequest,
            "invalid_request",
            id="422",
        ),
        pytest.param(
            StabilityError(404, "not_found", ["no such model"]),
            ModelUnavailable,
            "model_unavailable",
            id="404",
        ),
        pytest.param(
            StabilityError(429, "rate_limit_exceeded", ["slow down"], {"Retry-After": "3"}),
            RateLimited,
            "rate_limit_exceeded",
            id="429",
        ),
        pytest.param(
            StabilityError(500, "internal_error", ["SECRET-UPSTREAM-DETAIL"]),
            UpstreamError,
            "upstream_error",
            id="500",
        ),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(("reply", "error", "code"), _error_cases())
async def test_stability_errors_map_by_status_and_name_and_are_sent_once(
    stability: FakeStability,
    provider: StabilityProvider,
    make_request: MakeRequest,
    reply: StabilityError,
    error: type[GatewayError],
    code: str,
) -> None:
    stability.default = reply
    with pytest.raises(error) as caught:
        await provider.generate(make_request(CORE))
    assert type(caught.value) is error
    assert caught.value.code == code
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.message
    assert len(stability.requests) == 1
    if code == "rate_limit_exceeded":
        assert caught.value.headers["retry-after"] == "3"
        assert caught.value.should_retry


@pytest.mark.anyio
async def test_a_wrong_key_is_the_gateways_problem(
    stability: FakeStability, make_request: MakeRequest
) -> None:
    async with httpx.AsyncClient() as http:
        provider = StabilityProvider(http, api_key="sk-wrong", base_url=stability.origin)
        with pytest.raises(UpstreamAuthFailed):
            await provider.generate(make_request(CORE))


# ------------------------------------------------------------------------------- hostile answers


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Raw(b"<html>oops</html>"), id="not-json"),
        pytest.param(Raw(b'"a string"'), id="not-an-object"),
        pytest.param(Raw(b'{"finish_reason": "SUCCESS"}'), id="no-image"),
        pytest.param(Raw(b'{"finish_reason": "SUCCESS", "image": "%%%"}'), id="not-b64"),
        pytest.param(Raw(b'{"finish_reason": "SUCCESS", "image": "QUJD"}'), id="not-an-image"),
        pytest.param(Raw(b'{"finish_reason": "ERROR", "image": "iVBORw0K"}'), id="odd-reason"),
        pytest.param(Raw(b"[" * 100_000 + b"]" * 100_000), id="deeply-nested"),
        pytest.param(Truncated(b'{"finish_reason": "SUCCESS", "image": "iVBO'), id="truncated"),
    ],
)
async def test_a_malformed_answer_is_a_bad_response(
    stability: FakeStability, provider: StabilityProvider, make_request: MakeRequest, reply: Any
) -> None:
    stability.default = reply
    with pytest.raises(UpstreamBadResponse):
        await provider.generate(make_request(CORE))
    assert len(stability.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("status", [200, 400])
async def test_a_huge_answer_is_refused(
    stability: FakeStability,
    provider: StabilityProvider,
    make_request: MakeRequest,
    status: int,
) -> None:
    """The cap of every upstream (answer_limit, the operator's setting here), errors too."""
    stability.default = Raw(b'{"image": "' + b"A" * 200_000 + b'"}', status=status)
    with pytest.raises(UpstreamBadResponse) as caught:
        await provider.generate(make_request(CORE, max_answer_bytes=64 * 1024))
    assert "larger than 65536 bytes" in caught.value.message


@pytest.mark.anyio
async def test_the_deadline_bounds_the_call_and_it_is_not_resent(
    stability: FakeStability, provider: StabilityProvider, make_request: MakeRequest
) -> None:
    stability.default = Delay(3, Generated())
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout):
        await provider.generate(make_request(CORE, timeout_seconds=0.5))
    assert loop.time() - started < 2.5
    assert len(stability.requests) == 1


@pytest.mark.anyio
async def test_a_hangup_is_ambiguous_and_nothing_listening_is_unreachable(
    stability: FakeStability,
    provider: StabilityProvider,
    make_request: MakeRequest,
    closed_port: int,
) -> None:
    stability.default = Hangup()
    with pytest.raises(UpstreamError) as caught:
        await provider.generate(make_request(CORE))
    assert not caught.value.should_retry
    async with httpx.AsyncClient() as http:
        nowhere = StabilityProvider(
            http, api_key=API_KEY, base_url=f"http://127.0.0.1:{closed_port}"
        )
        with pytest.raises(UpstreamUnreachable):
            await nowhere.generate(make_request(CORE))


# ------------------------------------------------------------------------------- build


@pytest.mark.anyio
async def test_build_needs_a_key_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imagegw.aws.credentials import environment_config

    async with httpx.AsyncClient() as http:
        with pytest.raises(ProviderNotConfigured) as caught:
            build_provider("stability", {}, Settings(), http)
        assert "STABILITY_API_KEY" in caught.value.message
        with pytest.raises(ProviderNotConfigured):
            build_provider("stability", {"api_key": "k", "base_url": "ftp://x"}, Settings(), http)
    monkeypatch.setenv("STABILITY_API_KEY", "sk-env")
    monkeypatch.setenv("STABILITY_BASE_URL", "https://stability.example")
    assert environment_config(Settings(), "stability") == {
        "api_key": "sk-env",
        "base_url": "https://stability.example",
    }
