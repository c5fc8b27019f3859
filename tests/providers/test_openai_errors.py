"""Upstream failures through real HTTP calls to a fake upstream on 127.0.0.1."""

from __future__ import annotations

import time

import httpx
import pytest

from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.providers.base import ImageRequest, ImageResult
from imagegw.providers.openai import OpenAIProvider
from providers.conftest import UPSTREAM_KEY, MakeRequest

from support.fake_openai import (
    Delay,
    Error,
    FakeOpenAI,
    Hangup,
    Raw,
    Trickle,
    content_policy_violation,
    moderation_blocked,
    rate_limited,
    server_error,
)

SECRET = "SECRET-UPSTREAM-DETAIL"


async def call(base_url: str, request: ImageRequest, *, api_key: str = UPSTREAM_KEY) -> ImageResult:
    async with httpx.AsyncClient() as http:
        provider = OpenAIProvider(http, api_key=api_key, base_url=base_url)
        return await provider.generate(request)


async def failure(fake: FakeOpenAI, request: ImageRequest) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await call(fake.base_url, request)
    return caught.value


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(moderation_blocked(), id="gpt-image-moderation_blocked"),
        pytest.param(content_policy_violation(), id="dalle-content_policy_violation"),
    ],
)
async def test_safety_refusals_are_content_policy_violations(
    upstream: FakeOpenAI, make_request: MakeRequest, reply: Error
) -> None:
    upstream.enqueue(reply)
    error = await failure(upstream, make_request())
    assert isinstance(error, ContentPolicyViolation)
    assert (error.status, error.code, error.error_type) == (
        400,
        "content_policy_violation",
        "invalid_request_error",
    )
    assert SECRET not in error.message
    assert error.should_retry is False


@pytest.mark.anyio
async def test_other_upstream_400_is_the_callers_request_problem(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(
        Error(
            400,
            "Invalid value: '1254x836'. Supported values are: '1024x1024' and 'auto'.",
            code="invalid_value",
            param="size",
        )
    )
    error = await failure(upstream, make_request())
    assert type(error) is InvalidRequest
    assert (error.status, error.param, error.code) == (400, "size", "invalid_value")
    assert "1254x836" in error.message


@pytest.mark.anyio
@pytest.mark.parametrize("status", [401, 403])
async def test_upstream_auth_failure_is_the_gateways_problem(
    upstream: FakeOpenAI, make_request: MakeRequest, status: int
) -> None:
    upstream.enqueue(Error(status, f"Incorrect API key provided. {SECRET}", code="invalid_api_key"))
    error = await failure(upstream, make_request())
    assert isinstance(error, UpstreamAuthFailed)
    assert (error.status, error.code) == (502, "upstream_auth_failed")
    assert SECRET not in error.message
    assert error.should_retry is False


@pytest.mark.anyio
async def test_a_wrong_provider_key_is_refused_by_the_upstream(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    # No scripted reply: the fake refuses the key itself, as api.openai.com does.
    with pytest.raises(UpstreamAuthFailed):
        await call(upstream.base_url, make_request(), api_key="sk-wrong")
    assert upstream.requests[0].header("authorization") == "Bearer sk-wrong"
    assert upstream.undelivered == 0


@pytest.mark.anyio
async def test_upstream_404_means_the_model_is_gone(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(
        Error(404, "The model `gpt-image-1.5` does not exist.", code="model_not_found")
    )
    error = await failure(upstream, make_request())
    assert isinstance(error, ModelUnavailable)
    assert (error.status, error.code, error.param) == (404, "model_unavailable", "model")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "3"}, "3", id="retry-after"),
        pytest.param({}, "5", id="none-default"),
        pytest.param({"Retry-After": "1.2"}, "2", id="fraction-rounded-up"),
        pytest.param({"retry-after-ms": "1500", "Retry-After": "9"}, "2", id="ms-wins"),
        pytest.param({"Retry-After": "500"}, "120", id="capped-for-the-sdk"),
        pytest.param({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, "5", id="http-date"),
    ],
)
async def test_rate_limits_pass_on_when_to_retry(
    upstream: FakeOpenAI, make_request: MakeRequest, headers: dict[str, str], expected: str
) -> None:
    reply = rate_limited()
    upstream.enqueue(Error(429, reply.message, type=reply.type, code=reply.code, headers=headers))
    error = await failure(upstream, make_request())
    assert isinstance(error, RateLimited)
    assert (error.status, error.code) == (429, "rate_limit_exceeded")
    assert error.response_headers()["retry-after"] == expected
    assert error.response_headers()["x-should-retry"] == "true"


@pytest.mark.anyio
async def test_exhausted_quota_is_not_a_rate_limit(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(
        Error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        )
    )
    error = await failure(upstream, make_request())
    assert isinstance(error, ServiceUnavailable)
    assert (error.status, error.code) == (503, "upstream_quota_exhausted")
    assert "retry-after" not in error.response_headers()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(server_error(), id="500"),
        pytest.param(Error(503, f"Overloaded {SECRET}", type="server_error"), id="503"),
        pytest.param(
            Raw(f"<h1>{SECRET}</h1>".encode(), status=502, content_type="text/html"), id="502-html"
        ),
        pytest.param(Error(409, f"Conflict {SECRET}"), id="409"),
    ],
)
async def test_upstream_failures_are_502_without_the_upstream_body(
    upstream: FakeOpenAI, make_request: MakeRequest, reply: Error | Raw
) -> None:
    upstream.enqueue(reply)
    error = await failure(upstream, make_request())
    assert type(error) is UpstreamError
    assert (error.status, error.code, error.error_type) == (502, "upstream_error", "upstream_error")
    assert SECRET not in error.message
    # An upstream 5xx may have produced (and billed) an image: no automatic retry.
    assert error.should_retry is False


@pytest.mark.anyio
async def test_connection_refused_is_unreachable_and_safe_to_retry(
    closed_port: int, make_request: MakeRequest
) -> None:
    started = time.monotonic()
    with pytest.raises(UpstreamUnreachable) as caught:
        await call(f"http://127.0.0.1:{closed_port}/v1", make_request())
    assert time.monotonic() - started < 2
    assert (caught.value.status, caught.value.code) == (502, "upstream_unreachable")
    assert caught.value.should_retry is True


@pytest.mark.anyio
async def test_an_upstream_slower_than_the_budget_times_out(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(Delay(5.0))
    started = time.monotonic()
    error = await failure(upstream, make_request(timeout_seconds=0.3))
    elapsed = time.monotonic() - started
    assert isinstance(error, UpstreamTimeout)
    assert (error.status, error.code) == (504, "upstream_timeout")
    assert error.should_retry is False
    assert 0.25 <= elapsed < 2
    assert len(upstream.requests) == 1  # it was sent: the timeout is about the answer


@pytest.mark.anyio
async def test_an_answer_just_within_the_budget_succeeds(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(Delay(0.1))
    result = await call(upstream.base_url, make_request(timeout_seconds=1.0))
    assert len(result.images) == 1


@pytest.mark.anyio
async def test_the_budget_bounds_the_whole_answer_not_each_read(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    # Headers at once, then the body in pieces 0.2 s apart: every single read is quicker than
    # the 0.3 s budget, the whole answer takes 1.2 s. The budget is for the answer.
    upstream.enqueue(Trickle(interval=0.2, chunks=6))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await call(upstream.base_url, make_request(timeout_seconds=0.3))
    assert time.monotonic() - started < 0.9


@pytest.mark.anyio
async def test_a_dropped_connection_after_sending_is_not_safe_to_retry(
    upstream: FakeOpenAI, make_request: MakeRequest
) -> None:
    upstream.enqueue(Hangup())
    error = await failure(upstream, make_request())
    assert type(error) is UpstreamError
    assert error.status == 502
    assert error.should_retry is False
    assert len(upstream.requests) == 1
