"""The Lambda context's remaining time reaches the upstream call; running out is a clean 504."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lambda_harness import FakeLambdaContext, load_event, response_body

pytest_plugins = ["lambda_fixtures"]

Handler = Callable[[Any, Any], dict[str, Any]]


def assert_no_image_generated(directory: Path) -> None:
    assert not directory.exists() or list(directory.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "advice", "not_advice"),
    [
        ("rest-v1-generate", "respond-async", "API Gateway"),
        ("function-url-generate", "respond-async", "API Gateway"),
    ],
)
def test_too_little_function_time_left_is_a_504_with_advice_and_no_upstream_call(
    name: str,
    advice: str,
    not_advice: str,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    lambda_storage_dir: Path,
) -> None:
    # 2.5 s left, 2 s of it kept for answering: not enough for an upstream call.
    lambda_context.remaining_ms = 2_500
    for _ in range(2):
        response = cold_handler(load_event(name), lambda_context)
        assert response["statusCode"] == 504, response.get("body")
        error = json.loads(response_body(response))["error"]
        assert error["code"] == "upstream_timeout"
        assert error["type"] == "timeout_error"
        assert advice in error["message"]
        assert not_advice not in error["message"]
    assert_no_image_generated(lambda_storage_dir)


def test_api_gateway_about_to_cut_the_request_is_a_504_pointing_at_the_function_url(
    cold_handler: Handler, lambda_context: FakeLambdaContext, lambda_storage_dir: Path
) -> None:
    lambda_context.remaining_ms = 600_000
    event = load_event("rest-v1-generate")
    # API Gateway received the request 27.5 s ago: 1.5 s of its 29 s are left.
    event["requestContext"]["requestTimeEpoch"] = int((time.time() - 27.5) * 1000)
    response = cold_handler(event, lambda_context)
    assert response["statusCode"] == 504, response.get("body")
    message = json.loads(response_body(response))["error"]["message"]
    assert "API Gateway ends a request after 29 seconds" in message
    assert "Function URL" in message
    assert_no_image_generated(lambda_storage_dir)


def test_enough_time_left_generates_as_usual(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    lambda_context.remaining_ms = 20_000
    response = cold_handler(load_event("function-url-generate"), lambda_context)
    assert response["statusCode"] == 200, response.get("body")
