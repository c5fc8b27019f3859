"""The events/*.json samples are faithful to what AWS sends, and Mangum reads them as intended.

``sam local invoke -e events/<name>.json`` and the handler tests use these files, so a sample that
drifts from the real shape (a REST event with a ``version`` key, a v2 event with mixed-case
headers, a body that does not decode) would test the wrong thing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import pytest
from lambda_harness import (
    DEV_API_KEY,
    EDIT_EVENTS,
    EVENTS_DIR,
    GENERATE_EVENTS,
    NON_HTTP_EVENTS,
    V2_EVENTS,
    FakeLambdaContext,
    load_event,
)
from mangum.adapter import DEFAULT_TEXT_MIME_TYPES, HANDLERS
from mangum.handlers import APIGateway, HTTPGateway
from mangum.types import LambdaConfig

GENERATION_REQUEST = {"model": "local/sketch", "prompt": "a red bicycle", "n": 1, "size": "256x256"}
REST_EVENTS = ("rest-v1-generate", "rest-v1-models")
ALL_EVENTS = (*REST_EVENTS, *V2_EVENTS)

EXPECTED_REQUEST = {
    "rest-v1-generate": ("POST", "/v1/images/generations"),
    "rest-v1-models": ("GET", "/v1/models"),
    "http-v2-generate": ("POST", "/v1/images/generations"),
    "function-url-generate": ("POST", "/v1/images/generations"),
}

CONFIG = LambdaConfig(
    api_gateway_base_path="/", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES], exclude_headers=[]
)


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event["isBase64Encoded"]:
        return base64.b64decode(body, validate=True)
    return str(body).encode("utf-8")


def mangum_handler(event: dict[str, Any]) -> Any:
    """The handler Mangum picks for the event, in Mangum's own inference order."""
    context = FakeLambdaContext()
    for handler_cls in HANDLERS:
        if handler_cls.infer(event, context, CONFIG):
            return handler_cls(event, context, CONFIG)
    raise AssertionError("Mangum cannot infer a handler for this event")


# Not an event: `sam local --env-vars` overrides (tests/lambda/test_sam_local_env.py).
SAM_LOCAL_ENV = "env.local"


def test_the_events_folder_holds_exactly_the_documented_samples() -> None:
    expected = [*ALL_EVENTS, *NON_HTTP_EVENTS, *EDIT_EVENTS, SAM_LOCAL_ENV]
    assert sorted(path.stem for path in EVENTS_DIR.glob("*.json")) == sorted(expected)


def test_non_http_samples_carry_the_same_generation_request() -> None:
    eventbridge = load_event("eventbridge-generate")
    assert eventbridge["detail"]["request"] == GENERATION_REQUEST
    assert {"detail-type", "source", "id"} <= set(eventbridge)
    assert load_event("invoke-generate")["request"] == GENERATION_REQUEST
    (record,) = load_event("sqs-generate")["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert json.loads(record["body"])["request"] == GENERATION_REQUEST
    # SQS checksums the body with MD5 (a checksum, not security).
    checksum = hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()
    assert record["md5OfBody"] == checksum


def test_edit_samples_carry_the_same_edit_by_reference() -> None:
    invoke = load_event("invoke-edit")
    request = invoke["request"]
    assert invoke["action"] == "edit"
    assert set(request["images"][0]) == {"image_url"}
    assert request["images"][0]["image_url"].startswith("s3://")
    assert set(request["mask"]) == {"file_id"}
    eventbridge = load_event("eventbridge-edit")
    assert (eventbridge["detail"]["action"], eventbridge["detail"]["request"]) == ("edit", request)
    (record,) = load_event("sqs-edit")["Records"]
    body = json.loads(record["body"])
    assert (body["action"], body["request"]) == ("edit", request)
    checksum = hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()
    assert record["md5OfBody"] == checksum


@pytest.mark.parametrize("name", ALL_EVENTS)
def test_every_sample_carries_the_development_key(name: str) -> None:
    event = load_event(name)
    values = [value for key, value in event["headers"].items() if key.lower() == "authorization"]
    assert values == [f"Bearer {DEV_API_KEY}"]


@pytest.mark.parametrize("name", GENERATE_EVENTS)
def test_generation_samples_carry_the_same_json_request(name: str) -> None:
    event = load_event(name)
    assert json.loads(raw_body(event)) == GENERATION_REQUEST
    headers = {key.lower(): value for key, value in event["headers"].items()}
    assert headers["content-type"] == "application/json"
    if "content-length" in headers:
        assert int(headers["content-length"]) == len(raw_body(event))


@pytest.mark.parametrize("name", REST_EVENTS)
def test_rest_samples_have_the_api_gateway_proxy_v1_shape(name: str) -> None:
    event = load_event(name)
    method, path = EXPECTED_REQUEST[name]
    # A "version" key would send the event to Mangum's HTTP API handler instead.
    assert "version" not in event
    assert event["resource"] == "/{proxy+}"
    assert (event["httpMethod"], event["path"]) == (method, path)
    assert event["pathParameters"] == {"proxy": path.lstrip("/")}
    assert event["multiValueHeaders"] == {key: [value] for key, value in event["headers"].items()}
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "Prod"
    assert context["path"] == f"/Prod{path}"
    assert context["resourcePath"] == event["resource"]
    assert context["httpMethod"] == method
    assert context["requestId"]
    assert context["identity"]["sourceIp"]


@pytest.mark.parametrize("name", V2_EVENTS)
def test_v2_samples_have_the_payload_2_0_shape(name: str) -> None:
    event = load_event(name)
    method, path = EXPECTED_REQUEST[name]
    assert event["version"] == "2.0"
    assert "httpMethod" not in event
    assert "multiValueHeaders" not in event
    assert event["rawPath"] == path
    assert event["rawQueryString"] == ""
    assert all(key == key.lower() for key in event["headers"])
    context = event["requestContext"]
    assert context["http"]["method"] == method
    assert context["http"]["path"] == path
    assert context["http"]["sourceIp"]
    assert context["stage"] == "$default"
    assert context["routeKey"] == event["routeKey"]
    assert context["requestId"]
    assert context["domainName"] == event["headers"]["host"]


def test_http_api_sample_comes_from_the_proxy_route() -> None:
    event = load_event("http-v2-generate")
    assert event["routeKey"] == "ANY /{proxy+}"
    assert event["pathParameters"] == {"proxy": "v1/images/generations"}
    assert event["isBase64Encoded"] is False


def test_function_url_sample_has_a_lambda_url_domain_and_a_base64_body() -> None:
    event = load_event("function-url-generate")
    assert event["routeKey"] == "$default"
    domain = event["requestContext"]["domainName"]
    assert re.fullmatch(r"[a-z0-9]+\.lambda-url\.[a-z]{2}(-[a-z]+)+-\d\.on\.aws", domain), domain
    assert event["requestContext"]["domainPrefix"] == domain.split(".")[0]
    assert event["isBase64Encoded"] is True
    assert event["body"] != json.dumps(GENERATION_REQUEST)


@pytest.mark.parametrize("name", ALL_EVENTS)
def test_mangum_reads_each_sample_as_the_intended_request(name: str) -> None:
    event = load_event(name)
    method, path = EXPECTED_REQUEST[name]
    handler = mangum_handler(event)
    expected_cls = APIGateway if name in REST_EVENTS else HTTPGateway
    assert type(handler) is expected_cls
    scope = handler.scope
    assert (scope["method"], scope["path"]) == (method, path)
    headers = dict(scope["headers"])
    assert headers[b"authorization"] == f"Bearer {DEV_API_KEY}".encode()
    assert handler.body == raw_body(event)
