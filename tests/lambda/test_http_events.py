"""events/*.json through the real Lambda handler, twice in a row in one process.

The second call is the point: Mangum keeps one event loop for the life of the process and the app
is built once, so anything bound to the first invocation (a loop, a client, a lifespan) breaks
there, not on the first call.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from lambda_harness import (
    GENERATE_EVENTS,
    V2_EVENTS,
    FakeLambdaContext,
    header,
    load_event,
    response_body,
    with_authorization,
)
from PIL import Image

import imagegw.entrypoints.handler
from imagegw.catalog import load_catalog

pytest_plugins = ["lambda_fixtures"]

Handler = Callable[[Any, Any], dict[str, Any]]
ERROR_FIELDS = {"message", "type", "param", "code"}


def decoded_png(item: dict[str, Any]) -> Image.Image:
    data = base64.b64decode(item["b64_json"], validate=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def assert_generated_one_png(response: dict[str, Any]) -> bytes:
    assert response["statusCode"] == 200, response.get("body")
    assert response["isBase64Encoded"] is False
    assert (header(response, "content-type") or "").startswith("application/json")
    body = json.loads(response_body(response))
    assert isinstance(body["created"], int)
    assert len(body["data"]) == 1
    image = decoded_png(body["data"][0])
    assert image.format == "PNG"
    assert image.size == (256, 256)
    return base64.b64decode(body["data"][0]["b64_json"])


@pytest.mark.parametrize("name", GENERATE_EVENTS)
def test_generation_event_succeeds_twice_in_one_process(
    name: str, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    first = cold_handler(load_event(name), lambda_context)
    adapter = imagegw.entrypoints.handler._adapter
    second = cold_handler(
        load_event(name), FakeLambdaContext("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    )

    first_png = assert_generated_one_png(first)
    second_png = assert_generated_one_png(second)
    # The local model draws deterministically from the prompt.
    assert first_png == second_png
    first_id, second_id = header(first, "x-request-id"), header(second, "x-request-id")
    assert first_id
    assert second_id
    assert first_id != second_id
    # Built on the first invocation, reused by the second.
    assert adapter is not None
    assert imagegw.entrypoints.handler._adapter is adapter
    # Startup and shutdown would otherwise run around every invocation.
    assert adapter.lifespan == "off"


def test_rest_response_has_the_proxy_integration_v1_shape(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    for _ in range(2):
        response = cold_handler(load_event("rest-v1-generate"), lambda_context)
        assert set(response) == {
            "statusCode",
            "headers",
            "multiValueHeaders",
            "body",
            "isBase64Encoded",
        }
        assert isinstance(response["body"], str)


@pytest.mark.parametrize("name", V2_EVENTS)
def test_v2_response_has_the_payload_2_0_shape(
    name: str, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    for _ in range(2):
        response = cold_handler(load_event(name), lambda_context)
        assert set(response) == {"statusCode", "headers", "body", "isBase64Encoded"}
        assert isinstance(response["statusCode"], int)
        assert all(isinstance(value, str) for value in response["headers"].values())
        assert isinstance(response["body"], str)


def test_models_event_lists_the_catalog_twice(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    catalog_ids = [spec.id for spec in load_catalog()]
    request_ids = []
    for _ in range(2):
        response = cold_handler(load_event("rest-v1-models"), lambda_context)
        assert response["statusCode"] == 200, response.get("body")
        assert (header(response, "content-type") or "").startswith("application/json")
        body = json.loads(response_body(response))
        assert body["object"] == "list"
        assert [entry["id"] for entry in body["data"]] == catalog_ids
        assert all(entry["object"] == "model" for entry in body["data"])
        sketch = next(entry for entry in body["data"] if entry["id"] == "local/sketch")
        assert "256x256" in json.dumps(sketch["capabilities"])
        request_ids.append(header(response, "x-request-id"))
    assert all(request_ids)
    assert request_ids[0] != request_ids[1]


def test_every_sample_event_is_served_by_one_adapter(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    """A warm container gets whatever comes: interleaved event kinds on one loop and one app."""
    names = [*GENERATE_EVENTS, "rest-v1-models"]
    adapters = set()
    for name in names * 2:
        response = cold_handler(load_event(name), lambda_context)
        assert response["statusCode"] == 200, (name, response.get("body"))
        adapters.add(id(imagegw.entrypoints.handler._adapter))
    assert len(adapters) == 1


@pytest.mark.parametrize("name", [*GENERATE_EVENTS, "rest-v1-models"])
@pytest.mark.parametrize(
    ("authorization", "code"),
    [("Bearer sk-imagegw-wrong", "invalid_api_key"), (None, "missing_api_key")],
    ids=["wrong-key", "no-key"],
)
def test_bad_key_is_a_401_openai_error_through_lambda(
    name: str,
    authorization: str | None,
    code: str,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
) -> None:
    event = with_authorization(load_event(name), authorization)
    for _ in range(2):
        response = cold_handler(event, lambda_context)
        assert response["statusCode"] == 401, response.get("body")
        assert (header(response, "content-type") or "").startswith("application/json")
        assert header(response, "x-request-id")
        body = json.loads(response_body(response))
        assert set(body) == {"error"}
        assert set(body["error"]) == ERROR_FIELDS
        assert body["error"]["code"] == code
        assert body["error"]["type"] == "invalid_request_error"
        assert "sk-imagegw-wrong" not in response["body"]


def test_a_good_request_still_works_after_a_rejected_one(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("http-v2-generate")
    rejected = cold_handler(with_authorization(event, "Bearer sk-imagegw-wrong"), lambda_context)
    assert rejected["statusCode"] == 401
    assert_generated_one_png(cold_handler(event, lambda_context))


def test_the_handler_does_not_modify_the_event(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("function-url-generate")
    cold_handler(event, lambda_context)
    assert event == load_event("function-url-generate")


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("rest-v1-generate", "https://1234567890.execute-api.us-east-1.amazonaws.com/Prod/"),
        ("function-url-generate", None),
    ],
)
def test_local_links_keep_the_stage_of_the_public_url(
    name: str, prefix: str | None, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    # API Gateway's default endpoint has the stage in its public URL but not in the path the
    # app sees; a link without it would be a 403 from API Gateway.
    event = load_event(name)
    raw = event["body"]
    body = json.loads(base64.b64decode(raw) if event.get("isBase64Encoded") else raw)
    body["response_format"] = "url"
    event["body"] = json.dumps(body)
    event["isBase64Encoded"] = False
    for key in list(event["headers"]):
        if key.lower() == "content-length":
            del event["headers"][key]
    response = cold_handler(event, lambda_context)
    assert response["statusCode"] == 200, response.get("body")
    url = json.loads(response_body(response))["data"][0]["url"]
    domain = event["requestContext"]["domainName"]
    expected = prefix or f"https://{domain}/"
    assert url.startswith(expected + "v1/images/files/")
    # The link works when it arrives back through the same kind of event.
    follow = load_event(name)
    path_and_query = url[len(expected) - 1 :]
    path, _, query = path_and_query.partition("?")
    follow["body"] = None
    follow["isBase64Encoded"] = False
    if "httpMethod" in follow:
        follow["httpMethod"] = "GET"
        follow["path"] = path
        follow["queryStringParameters"] = dict(part.split("=", 1) for part in query.split("&"))
        follow["multiValueQueryStringParameters"] = None
    else:
        follow["requestContext"]["http"]["method"] = "GET"
        follow["requestContext"]["http"]["path"] = path
        follow["rawPath"] = path
        follow["rawQueryString"] = query
    got = cold_handler(follow, lambda_context)
    assert got["statusCode"] == 200, got.get("body")
    assert got["isBase64Encoded"] is True
    assert base64.b64decode(got["body"]).startswith(b"\x89PNG")
