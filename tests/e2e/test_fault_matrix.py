"""The fault matrix: every way an upstream (or AWS) fails, as the caller sees it.

The gateway runs under uvicorn with the real OpenAI provider; the upstream is the fake on
127.0.0.1 (or a closed port, or a listener whose backlog is full). For each fault the table says
the caller's status, error code and retry advice, how many requests reached the upstream, and how
many images the caller gets: every image an upstream delivered reaches the caller.
"""

from __future__ import annotations

import base64
import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws
from PIL import Image

from e2e.conftest import CLIENT_KEY, MakeGateway

from support.fake_openai import (
    Delay,
    Error,
    FakeOpenAI,
    Hangup,
    Images,
    Raw,
    Reply,
    moderation_blocked,
    rate_limited,
    server_error,
)

SECRET = "SECRET-UPSTREAM-DETAIL"
REQUEST = {"model": "openai/gpt-image-1.5", "prompt": "a lighthouse", "n": 2, "size": "1024x1024"}
# Fast backoff and short budgets keep the matrix quick; the policy itself is the production one.
BASE: dict[str, Any] = {
    "upstream_retry_base_seconds": 0.01,
    "upstream_timeout_seconds": 10.0,
    "upstream_connect_timeout_seconds": 0.3,
}


@dataclass(frozen=True)
class Fault:
    replies: tuple[Reply, ...] = ()
    status: int = 200
    code: str | None = None
    retry: bool = False
    calls: int = 1
    images: int = 0  # images the caller receives (= images the upstream delivered)
    settings: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    upstream: str = "fake"  # fake | refused | blackhole | secrets-down | s3-down
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int) -> Error:
    return Error(status, f"Upstream failure {status}. {SECRET}", type="server_error")


FAULTS: dict[str, Fault] = {
    "connect-refused": Fault(
        upstream="refused", status=502, code="upstream_unreachable", retry=True, calls=0
    ),
    "connect-timeout": Fault(
        upstream="blackhole", status=502, code="upstream_unreachable", retry=True, calls=0
    ),
    "read-timeout": Fault(
        replies=(Delay(3.0),),
        settings={"upstream_timeout_seconds": 1.0},
        status=504,
        code="upstream_timeout",
    ),
    "429-retry-after-then-ok": Fault(
        replies=(rate_limited(retry_after="1"), Images()), calls=2, images=2
    ),
    "429-retry-after-beyond-budget": Fault(
        replies=(rate_limited(retry_after="30"),),
        status=429,
        code="rate_limit_exceeded",
        retry=True,
        headers={"retry-after": "30"},
    ),
    "429-no-retry-after-then-ok": Fault(replies=(rate_limited(), Images()), calls=2, images=2),
    "429-no-retry-after-persistent": Fault(
        replies=(rate_limited(), rate_limited(), rate_limited(), Images()),
        status=429,
        code="rate_limit_exceeded",
        retry=True,
        calls=3,
        headers={"retry-after": "5"},
    ),
    "429-insufficient-quota": Fault(
        replies=(
            Error(
                429,
                "You exceeded your current quota.",
                type="insufficient_quota",
                code="insufficient_quota",
            ),
        ),
        status=503,
        code="upstream_quota_exhausted",
    ),
    "500": Fault(replies=(server_error(),), status=502, code="upstream_error"),
    "502": Fault(replies=(_error(502),), status=502, code="upstream_error"),
    "503": Fault(replies=(_error(503),), status=502, code="upstream_error"),
    "truncated-body": Fault(
        replies=(Raw(b'{"data": [{"b64_json": "iVBO', declared_length=5000),),
        status=502,
        code="upstream_error",
    ),
    "hangup": Fault(replies=(Hangup(),), status=502, code="upstream_error"),
    "invalid-json": Fault(
        replies=(Raw(b"<html>Bad gateway</html>"),), status=502, code="upstream_bad_response"
    ),
    "200-no-images": Fault(replies=(Images(count=0),), status=502, code="upstream_bad_response"),
    "200-image-without-data": Fault(
        replies=(Raw(b'{"created": 1, "data": [{"url": "https://elsewhere/x.png"}]}'),),
        status=502,
        code="upstream_bad_response",
    ),
    "200-fewer-images": Fault(replies=(Images(count=1),), images=1),
    "safety-refusal": Fault(
        replies=(moderation_blocked(),), status=400, code="content_policy_violation"
    ),
    "s3-put-fails": Fault(
        upstream="s3-down",
        replies=(Images(),),
        request={"response_format": "url"},
        images=2,
        headers={"x-imagegw-delivery": "b64_json; reason=storage_unavailable"},
    ),
    "secrets-manager-down": Fault(
        upstream="secrets-down", status=503, code="secret_unavailable", retry=True, calls=0
    ),
}


@pytest.fixture
def closed_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A listener that never accepts, its backlog already full: connections time out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


def _settings(fault: Fault, request: pytest.FixtureRequest) -> dict[str, Any]:
    settings = {**BASE, **fault.settings}
    if fault.upstream == "refused":
        port = request.getfixturevalue("closed_port")
        settings["openai_base_url"] = f"http://127.0.0.1:{port}/v1"
    elif fault.upstream == "blackhole":
        port = request.getfixturevalue("blackhole")
        settings["openai_base_url"] = f"http://127.0.0.1:{port}/v1"
    elif fault.upstream == "secrets-down":
        request.getfixturevalue("aws_env")
        port = request.getfixturevalue("closed_port")
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{port}")
        settings["provider_secret_id"] = "imagegw/providers"
    elif fault.upstream == "s3-down":
        request.getfixturevalue("aws_env")
        settings.update(storage="s3", s3_bucket="no-such-bucket")
    return settings


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault(
    name: str, make_gateway: MakeGateway, upstream: FakeOpenAI, request: pytest.FixtureRequest
) -> None:
    fault = FAULTS[name]
    upstream.enqueue(*fault.replies)
    settings = _settings(fault, request)
    with mock_aws() if fault.upstream == "s3-down" else _nothing():
        if fault.upstream == "s3-down":
            boto3.client("s3", region_name="us-east-1")  # the bucket is never created
        gateway = make_gateway(**settings)
        response = httpx.post(
            gateway.base_url + "/v1/images/generations",
            json={**REQUEST, **fault.request},
            headers={"Authorization": f"Bearer {CLIENT_KEY}"},
            timeout=30,
        )

    assert response.status_code == fault.status, response.text
    assert response.headers["x-request-id"].startswith("req_")
    assert SECRET not in response.text
    for header, value in fault.headers.items():
        assert response.headers[header] == value
    assert len(upstream.requests) == fault.calls
    body = response.json()
    if fault.status == 200:
        _check_images(body, fault.images)
        assert body.get("images_filtered", 0) == REQUEST["n"] - fault.images
    else:
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["code"] == fault.code
        assert response.headers["x-should-retry"] == ("true" if fault.retry else "false")


def _check_images(body: dict[str, Any], expected: int) -> None:
    assert len(body["data"]) == expected
    for item in body["data"]:
        image = Image.open(io.BytesIO(base64.b64decode(item["b64_json"], validate=True)))
        assert image.size == (1024, 1024)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None
