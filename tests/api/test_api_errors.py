"""Request ids, retry advice, upstream failures and bugs: what callers see when things go wrong."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest
from api_support import GENERATIONS, assert_error, client_for
from fastapi.testclient import TestClient

from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.providers.base import ImageProvider, ImageRequest, ImageResult
from imagegw.providers.openai import translate_error
from imagegw.settings import Settings

from conftest import AUTH
from support.fakes import FakeClock, FakeProvider

GPT_REQUEST = {"model": "openai/gpt-image-1.5", "prompt": "a lighthouse"}
SECRET_DETAIL = "db password hunter2 at /srv/imagegw/secret.py"


@contextmanager
def _client_raising(
    error: GatewayError, settings: Settings, clock: FakeClock
) -> Iterator[TestClient]:
    # How one failure is rendered: the gateway's own retries (tests/unit/test_retry.py) are off.
    single = settings.model_copy(update={"upstream_max_attempts": 1})
    runtime = Runtime(single, providers={"openai": FakeProvider(error=error)}, clock=clock)
    with client_for(runtime) as client:
        yield client


# ---------------------------------------------------------------- request ids


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/v1/models", 200),
        ("POST", GENERATIONS, 200),
        ("GET", "/v1/nothing-here", 404),
        ("GET", GENERATIONS, 405),
        ("DELETE", "/v1/models", 405),
        ("GET", "/v1/models/nope", 404),
    ],
)
def test_every_response_carries_a_request_id(
    client: TestClient, method: str, path: str, status: int
) -> None:
    body = {"model": "local/sketch", "prompt": "x", "size": "256x256"}
    response = client.request(method, path, headers=AUTH, json=body if method == "POST" else None)
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"].startswith("req_")


def test_request_ids_are_unique(client: TestClient) -> None:
    ids = {client.get("/health").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_unknown_url_is_a_404_envelope(client: TestClient) -> None:
    response = client.get("/v1/images/nowhere", headers=AUTH)
    message = assert_error(response, 404, code="unknown_url")
    assert "/v1/images/nowhere" in message


def test_wrong_method_is_a_405_envelope(client: TestClient) -> None:
    response = client.get(GENERATIONS, headers=AUTH)
    message = assert_error(response, 405, code="method_not_allowed")
    assert "GET" in message


# ---------------------------------------------------------------- a bug in a provider


class ExplodingProvider(ImageProvider):
    async def generate(self, request: ImageRequest) -> ImageResult:
        raise RuntimeError(f"internal failure: {SECRET_DETAIL}")


def test_unexpected_exception_is_a_generic_500(settings: Settings, clock: FakeClock) -> None:
    runtime = Runtime(settings, providers={"openai": ExplodingProvider()}, clock=clock)
    with client_for(runtime) as client:
        response = client.post(GENERATIONS, json=GPT_REQUEST, headers=AUTH)
    assert_error(response, 500, code=None, error_type="server_error")
    assert response.json()["error"]["param"] is None
    for leak in ("Traceback", "RuntimeError", "hunter2", "secret.py", "internal failure"):
        assert leak not in response.text


# ---------------------------------------------------------------- upstream failures


def test_upstream_rate_limit_is_a_429_with_retry_after(
    settings: Settings, clock: FakeClock
) -> None:
    error = translate_error(
        429,
        b'{"error": {"message": "Rate limit exceeded for images per minute in organization '
        b'org-123.", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}',
        {"retry-after": "7"},
    )
    with _client_raising(error, settings, clock) as client:
        response = client.post(GENERATIONS, json=GPT_REQUEST, headers=AUTH)
    message = assert_error(
        response, 429, code="rate_limit_exceeded", error_type="rate_limit_error", retry=True
    )
    assert response.headers["retry-after"] == "7"
    assert "org-123" not in message


@pytest.mark.parametrize(
    ("error", "status", "code", "retry"),
    [
        pytest.param(
            UpstreamError("The upstream provider failed (HTTP 500)."),
            502,
            "upstream_error",
            False,
            id="upstream-5xx",
        ),
        pytest.param(
            UpstreamUnreachable("Could not connect."),
            502,
            "upstream_unreachable",
            True,
            id="unreachable",
        ),
        pytest.param(
            UpstreamAuthFailed("The upstream rejected the gateway's credentials."),
            502,
            "upstream_auth_failed",
            False,
            id="upstream-auth",
        ),
        pytest.param(
            UpstreamBadResponse("No images."), 502, "upstream_bad_response", False, id="bad-answer"
        ),
        pytest.param(
            UpstreamTimeout("No answer within 300 seconds."),
            504,
            "upstream_timeout",
            False,
            id="timeout",
        ),
        pytest.param(
            ContentPolicyViolation("Rejected by the safety system."),
            400,
            "content_policy_violation",
            False,
            id="content-policy",
        ),
    ],
)
def test_upstream_failure_is_surfaced_with_its_status(
    settings: Settings,
    clock: FakeClock,
    error: GatewayError,
    status: int,
    code: str,
    retry: bool,
) -> None:
    with _client_raising(error, settings, clock) as client:
        response = client.post(GENERATIONS, json=GPT_REQUEST, headers=AUTH)
    message = assert_error(response, status, code=code, retry=retry)
    assert message == error.message
    assert "retry-after" not in response.headers


def test_translated_upstream_500_does_not_echo_the_upstream_body(
    settings: Settings, clock: FakeClock
) -> None:
    error = translate_error(
        500, f'{{"error": {{"message": "{SECRET_DETAIL}", "type": "server_error"}}}}'.encode(), {}
    )
    with _client_raising(error, settings, clock) as client:
        response = client.post(GENERATIONS, json=GPT_REQUEST, headers=AUTH)
    assert_error(response, 502, code="upstream_error")
    assert "hunter2" not in response.text


def test_translated_safety_refusal_is_a_400_content_policy_violation(
    settings: Settings, clock: FakeClock
) -> None:
    error = translate_error(
        400,
        b'{"error": {"message": "Your request was rejected by the safety system.", '
        b'"type": "image_generation_user_error", "param": null, "code": "moderation_blocked"}}',
        {},
    )
    with _client_raising(error, settings, clock) as client:
        response = client.post(GENERATIONS, json=GPT_REQUEST, headers=AUTH)
    assert_error(response, 400, code="content_policy_violation", error_type="invalid_request_error")


# ---------------------------------------------------------------- signed image links


def _url_link(client: TestClient) -> tuple[str, dict[str, str]]:
    response = client.post(
        GENERATIONS,
        json={"model": "local/sketch", "prompt": "x", "size": "256x256", "response_format": "url"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    split = urlsplit(response.json()["data"][0]["url"])
    return split.path, {name: values[0] for name, values in parse_qs(split.query).items()}


def test_forged_link_signature_is_a_403(client: TestClient) -> None:
    path, query = _url_link(client)
    query["signature"] = "0" * 64
    assert_error(client.get(path, params=query), 403, code="invalid_link")


def test_link_without_its_query_is_a_403(client: TestClient) -> None:
    path, _ = _url_link(client)
    assert_error(client.get(path), 403, code="invalid_link")


@pytest.mark.parametrize(
    "expires",
    [
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("\u00b2\u00b3", id="superscript-two-three"),
        "soon",
        "-1",
    ],
)
def test_link_with_a_mangled_expiry_is_a_403_not_a_500(client: TestClient, expires: str) -> None:
    path, query = _url_link(client)
    query["expires"] = expires
    response = client.get(path, params=query)
    assert_error(response, 403, code="invalid_link")


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/images/files/a.png", "image_not_found"),
        ("/v1/images/files/%2e%2e", "image_not_found"),
        # The client normalises the path: it no longer reaches the files route at all.
        ("/v1/images/files/..%2fx.png", "unknown_url"),
    ],
)
def test_link_to_something_that_is_not_a_stored_image_is_a_404(
    client: TestClient, path: str, code: str
) -> None:
    response = client.get(path, params={"expires": "9999999999", "signature": "0" * 64})
    assert_error(response, 404, code=code)
