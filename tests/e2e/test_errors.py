"""Every failure as the official openai client sees it: class, status, code, param, headers."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from e2e.conftest import MakeClient, MakeGateway

from support.fake_openai import (
    Delay,
    Error,
    FakeOpenAI,
    Images,
    content_policy_violation,
    invalid_upstream_key,
    moderation_blocked,
    rate_limited,
    server_error,
)

SECRET = "SECRET-UPSTREAM-DETAIL"
GENERATE: dict[str, Any] = {"model": "openai/gpt-image-1.5", "prompt": "a lighthouse"}


def raised(client: openai.OpenAI, **kwargs: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(**{**GENERATE, **kwargs})
    return caught.value


def check(
    error: openai.APIStatusError,
    cls: type[openai.APIStatusError],
    status: int,
    code: str,
    *,
    param: str | None = None,
    should_retry: bool = False,
) -> None:
    assert type(error) is cls, error
    assert error.status_code == status
    assert error.code == code
    assert error.param == param
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert error.response.headers["x-should-retry"] == ("true" if should_retry else "false")


# ----------------------------------------------------------------------- caller's mistakes


def test_wrong_client_key(make_client: MakeClient, gateway: Any, upstream: FakeOpenAI) -> None:
    client = make_client(gateway, api_key="sk-not-a-key")
    check(raised(client), openai.AuthenticationError, 401, "invalid_api_key")
    assert upstream.requests == []


def test_missing_client_key(oai: openai.OpenAI, upstream: FakeOpenAI) -> None:
    error = raised(oai, extra_headers={"Authorization": openai.Omit()})
    check(error, openai.AuthenticationError, 401, "missing_api_key")
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("kwargs", "param", "code", "in_message"),
    [
        pytest.param({"n": 11}, "n", "invalid_value", "between 1 and 10", id="n-too-high"),
        pytest.param({"size": "999x999"}, "size", "invalid_value", "1024x1536", id="bad-size"),
        pytest.param(
            {"extra_body": {"foo": 1}}, "foo", "unknown_parameter", "'foo'", id="unknown-param"
        ),
        pytest.param({"style": "vivid"}, "style", "unsupported_parameter", "style", id="style"),
        pytest.param(
            {"background": "transparent", "output_format": "jpeg"},
            "background",
            "invalid_value",
            "png",
            id="transparent-jpeg",
        ),
        pytest.param({"prompt": "   "}, "prompt", "invalid_value", "empty", id="blank-prompt"),
        pytest.param({"n": "2"}, "n", "invalid_type", "integer", id="n-as-string"),
    ],
)
def test_bad_requests(
    oai: openai.OpenAI,
    upstream: FakeOpenAI,
    kwargs: dict[str, Any],
    param: str,
    code: str,
    in_message: str,
) -> None:
    error = raised(oai, **kwargs)
    check(error, openai.BadRequestError, 400, code, param=param)
    assert in_message in error.message
    assert upstream.requests == []  # refused before anything was spent


def test_retired_model_names_its_shutdown_date(oai: openai.OpenAI) -> None:
    error = raised(oai, model="dall-e-3")
    check(error, openai.NotFoundError, 404, "model_retired", param="model")
    assert "2026-05-12" in error.message
    assert "gpt-image-2.5-sunburst" in error.message  # and what to use instead


def test_unknown_model(oai: openai.OpenAI) -> None:
    error = raised(oai, model="no-such-model")
    check(error, openai.NotFoundError, 404, "model_not_found", param="model")
    assert "no-such-model" in error.message


# ----------------------------------------------------------------------- upstream trouble


def test_upstream_rate_limit_reaches_the_client_with_retry_after(
    make_gateway: MakeGateway, make_client: MakeClient, upstream: FakeOpenAI
) -> None:
    # The upstream's wait does not fit the request's budget, so the gateway does not retry on
    # its own: the caller gets the 429 and its Retry-After at once.
    oai = make_client(make_gateway(upstream_timeout_seconds=4))
    upstream.enqueue(rate_limited(retry_after="3"))
    error = raised(oai)
    check(error, openai.RateLimitError, 429, "rate_limit_exceeded", should_retry=True)
    assert error.response.headers["retry-after"] == "3"
    assert error.type == "rate_limit_error"
    assert len(upstream.requests) == 1


def test_upstream_server_error_is_502_without_its_body(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.enqueue(server_error())
    error = raised(oai)
    check(error, openai.InternalServerError, 502, "upstream_error")
    assert SECRET not in error.response.text
    assert "processing your request" not in error.response.text


def test_upstream_rejecting_our_key_is_502_not_401(
    oai: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.enqueue(invalid_upstream_key())
    error = raised(oai)
    # The caller's key is fine; the gateway's provider key is not: not the caller's problem.
    check(error, openai.InternalServerError, 502, "upstream_auth_failed")
    assert SECRET not in error.response.text
    assert "sk-ups" not in error.response.text


@pytest.mark.parametrize("reply", [content_policy_violation(), moderation_blocked()])
def test_upstream_safety_refusal(oai: openai.OpenAI, upstream: FakeOpenAI, reply: Error) -> None:
    upstream.enqueue(reply)
    error = raised(oai)
    check(error, openai.BadRequestError, 400, "content_policy_violation")
    assert SECRET not in error.response.text


def test_upstream_slower_than_the_gateway_timeout_is_504(
    make_gateway: MakeGateway, make_client: MakeClient, upstream: FakeOpenAI
) -> None:
    client = make_client(make_gateway(upstream_timeout_seconds=0.5))
    upstream.enqueue(Delay(5.0))
    started = time.monotonic()
    error = raised(client)
    assert time.monotonic() - started < 3
    check(error, openai.InternalServerError, 504, "upstream_timeout")
    assert len(upstream.requests) == 1


def test_upstream_unreachable_is_502_and_safe_to_retry(
    make_gateway: MakeGateway, make_client: MakeClient, closed_port: int
) -> None:
    client = make_client(make_gateway(openai_base_url=f"http://127.0.0.1:{closed_port}/v1"))
    check(
        raised(client), openai.InternalServerError, 502, "upstream_unreachable", should_retry=True
    )


def test_openai_provider_not_configured_is_503_naming_the_setting(
    make_gateway: MakeGateway, make_client: MakeClient, upstream: FakeOpenAI
) -> None:
    client = make_client(make_gateway(openai_api_key=None))
    error = raised(client)
    check(error, openai.InternalServerError, 503, "provider_not_configured")
    assert "OPENAI_API_KEY" in error.message
    assert upstream.requests == []


# ----------------------------------------------------------------------- client retries


def test_client_does_not_retry_an_upstream_failure(
    make_client: MakeClient, gateway: Any, upstream: FakeOpenAI
) -> None:
    # The SDK retries every status >= 500 by default, but it obeys `x-should-retry: false`
    # first. The gateway sends false on a 502 from an upstream 5xx because the upstream may
    # already have generated (and billed) the images, so a blind repeat could pay twice.
    client = make_client(gateway, max_retries=2)
    upstream.enqueue(server_error(), Images(), Images())
    error = raised(client)
    assert error.status_code == 502
    assert error.response.headers["x-should-retry"] == "false"
    assert len(upstream.requests) == 1


def test_client_retries_a_rate_limit_after_retry_after(
    make_client: MakeClient, gateway: Any, upstream: FakeOpenAI
) -> None:
    # The counterpart: a 429 (refused before any work, nothing billed) carries
    # `x-should-retry: true` and Retry-After, and the SDK waits that long, then succeeds.
    client = make_client(gateway, max_retries=1)
    upstream.enqueue(rate_limited(retry_after="1"))
    started = time.monotonic()
    response = client.images.generate(**GENERATE)
    assert time.monotonic() - started >= 0.9
    assert len(response.data) == 1
    assert len(upstream.requests) == 2
    assert upstream.requests[0].json == upstream.requests[1].json
