"""Events of other services get a clear error result from the handler; they never raise.

Mangum raises RuntimeError on anything it cannot infer; a raise would make the service that sent
the event retry it (SQS redelivers, EventBridge retries) instead of seeing the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lambda_harness import FakeLambdaContext, load_event

pytest_plugins = ["lambda_fixtures"]

Handler = Callable[[Any, Any], dict[str, Any]]

SQS_EVENT = {
    "Records": [
        {
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
            "body": '{"model": "local/sketch", "prompt": "a red bicycle"}',
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1545082649183",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": "1545082649185",
            },
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:imagegw-jobs",
            "awsRegion": "us-east-1",
        }
    ]
}

EVENTBRIDGE_EVENT = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-22T04:30:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/imagegw-cleanup"],
    "detail": {},
}

WEBSOCKET_EVENT = {
    "requestContext": {
        "routeKey": "$connect",
        "eventType": "CONNECT",
        "connectionId": "L0SM9cOFvHcCIhw=",
        "requestId": "L0SM9FEJPHcFdQw=",
        "stage": "Prod",
        "apiId": "a1b2c3d4e5",
    },
    "isBase64Encoded": False,
}

NON_HTTP_EVENTS = {
    "sqs": SQS_EVENT,
    "eventbridge": EVENTBRIDGE_EVENT,
    "websocket": WEBSOCKET_EVENT,
    "empty-dict": {},
    "list": [SQS_EVENT],
    "empty-list": [],
    "string": "generate",
    "none": None,
}


@pytest.mark.parametrize("event", list(NON_HTTP_EVENTS.values()), ids=list(NON_HTTP_EVENTS))
def test_non_http_event_gets_the_error_result(
    event: Any, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    for _ in range(2):
        result = cold_handler(event, lambda_context)
        assert set(result) == {"error"}
        error = result["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "unsupported_event"
        assert error["type"] == "invalid_request_error"
        assert "HTTP" in error["message"]


def test_http_events_still_work_after_non_http_ones(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    for event in NON_HTTP_EVENTS.values():
        assert "error" in cold_handler(event, lambda_context)
    response = cold_handler(load_event("rest-v1-models"), lambda_context)
    assert response["statusCode"] == 200, response.get("body")


MALFORMED_HTTP_EVENTS = {
    "v2-without-http": {"version": "2.0", "requestContext": {}},
    "v1-without-path": {"httpMethod": "GET", "requestContext": {}},
}


@pytest.mark.parametrize(
    "event", list(MALFORMED_HTTP_EVENTS.values()), ids=list(MALFORMED_HTTP_EVENTS)
)
def test_malformed_http_event_gets_an_error_result_not_a_crash(
    event: Any, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    result = cold_handler(event, lambda_context)
    assert result["error"]["code"] == "malformed_event"
    assert set(result["error"]) == {"message", "type", "param", "code"}
