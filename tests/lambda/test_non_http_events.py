"""Events the handler cannot use get a clear error result; they never raise.

Mangum raises RuntimeError on anything it cannot infer, so nothing but HTTP events may reach it.
A raise would make the service that sent the event retry it (SQS redelivers, EventBridge retries)
instead of seeing the answer. SQS, EventBridge and direct invocations are served now (see
test_event_invocations.py); what is left here is what none of them can use.
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

SNS_EVENT = {
    "Records": [
        {
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "Sns": {"Type": "Notification", "Message": "generate"},
        }
    ]
}

UNSUPPORTED_EVENTS = {"websocket": WEBSOCKET_EVENT, "sns": SNS_EVENT}

# Payloads that are meant as a generation (EventBridge, direct invoke) but carry none.
MALFORMED_EVENTS = {
    "eventbridge-without-request": EVENTBRIDGE_EVENT,
    "empty-dict": {},
    "list": [SQS_EVENT],
    "empty-list": [],
    "string": "generate",
    "none": None,
    "unknown-action": {"action": "delete", "request": {"prompt": "x"}},
    "request-not-object": {"request": "a red bicycle"},
    "bad-job-id": {"request": {"prompt": "x"}, "job_id": "../../etc"},
    "unknown-field": {"request": {"prompt": "x"}, "callback": "https://example.com"},
}


def assert_error(result: Any, code: str) -> dict[str, Any]:
    assert set(result) == {"error"}
    error: dict[str, Any] = result["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize("event", list(UNSUPPORTED_EVENTS.values()), ids=list(UNSUPPORTED_EVENTS))
def test_events_of_unsupported_services_get_the_error_result(
    event: Any, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    for _ in range(2):
        error = assert_error(cold_handler(event, lambda_context), "unsupported_event")
        assert "HTTP" in error["message"]


@pytest.mark.parametrize("event", list(MALFORMED_EVENTS.values()), ids=list(MALFORMED_EVENTS))
def test_payloads_without_a_usable_request_get_the_error_result(
    event: Any, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    for _ in range(2):
        error = assert_error(cold_handler(event, lambda_context), "malformed_event")
        assert "request" in error["message"] or error["param"] in {"action", "job_id", "callback"}


@pytest.mark.parametrize(
    "body",
    ["not json", '{"job_id": "../etc"}', '{"request": {"prompt": "x"}, "callback": "x"}', "[]"],
    ids=["not-json", "bad-job-id", "unknown-field", "list"],
)
def test_an_unusable_sqs_message_is_a_batch_item_failure_not_a_failed_batch(
    body: str, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    """The message is delivered again until the queue moves it to the DLQ; the batch's other
    messages are not affected (they are covered in test_event_invocations.py)."""
    event = {"Records": [dict(SQS_EVENT["Records"][0], body=body)]}
    for _ in range(2):
        result = cold_handler(event, lambda_context)
        assert result == {
            "batchItemFailures": [{"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"}]
        }


def test_http_events_still_work_after_non_http_ones(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    for event in [*UNSUPPORTED_EVENTS.values(), *MALFORMED_EVENTS.values()]:
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
