"""The response limit through the real Lambda handler, and the size estimate against reality.

Through Mangum the request scope carries the Lambda event, so the limit applies without
``IMAGEGW_ENFORCE_RESPONSE_LIMIT``. ``lambda_response_size`` must be an upper bound of what the
Lambda runtime really sends: the handler's result serialized as JSON, which escapes the body's
quotes and backslashes again and may turn non-ASCII characters into \\uXXXX escapes.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lambda_harness import (
    DEV_API_KEY,
    GENERATE_EVENTS,
    FakeLambdaContext,
    header,
    load_event,
    response_body,
)

from imagegw.generation.response_size import ENVELOPE_ALLOWANCE, lambda_response_size

from support.fake_openai import FakeOpenAI, Images
from support.leaks import LeakWatch

pytest_plugins = ["lambda_fixtures"]

Handler = Callable[[Any, Any], dict[str, Any]]

# Quotes, backslashes, control characters, accents, CJK, an emoji outside the BMP, U+2028;
# long enough that escaping adds far more than the estimate's fixed envelope allowance.
REVISED = 'Ein "Leuchtturm" \\ im Sturm\n\t— 灯台と嵐 🌩️ ünïcödé\u2028end. ' * 100


def with_body(event: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A copy of a sample event carrying ``body`` (encoded as the event encodes bodies)."""
    changed = copy.deepcopy(event)
    raw = json.dumps(body).encode("utf-8")
    changed["body"] = (
        base64.b64encode(raw).decode("ascii") if changed.get("isBase64Encoded") else raw.decode()
    )
    for field in ("headers", "multiValueHeaders"):
        for name in list(changed.get(field) or {}):
            if name.lower() == "content-length":
                value = str(len(raw))
                changed[field][name] = [value] if field == "multiValueHeaders" else value
    return changed


def service_headers(response: dict[str, Any]) -> dict[str, str]:
    headers = dict(response.get("headers") or {})
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(name, values[0])
    return {name: value for name, value in headers.items() if name.startswith("x-imagegw-")}


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with FakeOpenAI(expected_key="sk-upstream-lambda") as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-lambda")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        yield fake


@pytest.mark.parametrize("name", GENERATE_EVENTS)
def test_the_size_estimate_bounds_the_serialized_handler_result(
    name: str,
    upstream: FakeOpenAI,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    leak_watch: LeakWatch,
) -> None:
    leak_watch.secret("sk-upstream-lambda", DEV_API_KEY)
    upstream.enqueue(Images(revised_prompt=REVISED))
    event = with_body(
        load_event(name),
        {"model": "openai/gpt-image-2", "prompt": "a lighthouse", "n": 2, "size": "1024x1024"},
    )

    result = cold_handler(event, lambda_context)

    assert result["statusCode"] == 200, result.get("body")
    body = response_body(result)
    document = json.loads(body)
    assert [item["revised_prompt"] for item in document["data"]] == [REVISED, REVISED]
    for item in document["data"]:
        leak_watch.image(base64.b64decode(item["b64_json"]))
    estimate = lambda_response_size(body, service_headers(result))
    # However the runtime serializes the result (escaped or raw UTF-8), it is not larger.
    for ensure_ascii in (True, False):
        serialized = json.dumps(result, ensure_ascii=ensure_ascii).encode("utf-8")
        assert len(serialized) <= estimate, (ensure_ascii, len(serialized), estimate)
    # Not vacuous: escaping grew the result by more than the estimate's fixed allowance.
    assert len(json.dumps(result).encode()) - len(body) > ENVELOPE_ALLOWANCE


def test_the_estimate_holds_for_a_body_of_nothing_but_escapes() -> None:
    """The worst case per byte: every character needs an escape in the outer JSON."""
    content = json.dumps({"data": [{"revised_prompt": '"\\' * 500 + "🌩" * 500 + "é" * 500}]})
    encoded = content.encode("utf-8")
    headers = {"x-imagegw-model": "openai/gpt-image-2"}
    result = {
        "statusCode": 200,
        "headers": {
            **headers,
            "content-type": "application/json",
            "x-request-id": "req_" + "0" * 32,
        },
        "multiValueHeaders": {},
        "body": content,
        "isBase64Encoded": False,
    }
    serialized = json.dumps(result).encode("utf-8")  # ensure_ascii: the longest form
    assert len(serialized) <= lambda_response_size(encoded, headers)


@pytest.fixture
def tiny_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every generation answer is over 1,024 bytes (the smallest limit the settings accept)."""
    monkeypatch.setenv("IMAGEGW_MAX_RESPONSE_BYTES", "1024")


@pytest.mark.parametrize("name", GENERATE_EVENTS)
def test_over_the_limit_through_lambda_is_a_413_when_links_are_not_allowed(
    name: str,
    tiny_limit: None,
    monkeypatch: pytest.MonkeyPatch,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
) -> None:
    monkeypatch.setenv("IMAGEGW_OVERSIZE_TO_URL", "false")
    result = cold_handler(load_event(name), lambda_context)
    assert result["statusCode"] == 413, result.get("body")
    error = json.loads(response_body(result))["error"]
    assert error["code"] == "response_too_large"
    assert error["param"] == "response_format"
    assert "response_format=url" in error["message"]


@pytest.mark.parametrize("name", GENERATE_EVENTS)
def test_over_the_limit_through_lambda_switches_to_links(
    name: str, tiny_limit: None, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    result = cold_handler(load_event(name), lambda_context)
    assert result["statusCode"] == 200, result.get("body")
    assert header(result, "x-imagegw-delivery") == "url; reason=response_too_large"
    (item,) = json.loads(response_body(result))["data"]
    assert set(item) == {"url", "expires_at"}
