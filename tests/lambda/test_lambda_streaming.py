"""``stream: true`` through the real Lambda handler (Mangum): buffered, still a valid stream.

Mangum cannot stream: the whole SSE body is the invocation's result. The official client is
pointed at the handler itself (its HTTP transport turns each request into an API Gateway event
and the handler's result back into a response), so what is checked is what the SDK accepts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from lambda_harness import FakeLambdaContext, header, load_event, response_body
from test_lambda_response_limit import with_body

pytest_plugins = ["lambda_fixtures"]

Handler = Callable[[Any, Any], dict[str, Any]]


def sdk_through(handler: Handler, event_name: str, results: list[dict[str, Any]]) -> openai.OpenAI:
    """The official client, its requests answered by ``handler`` as API Gateway would."""
    return sdk_answered_by(
        handler,
        lambda request: with_body(load_event(event_name), json.loads(request.content)),
        results,
    )


def sdk_answered_by(
    handler: Handler,
    to_event: Callable[[httpx2.Request], dict[str, Any]],
    results: list[dict[str, Any]],
) -> openai.OpenAI:
    """The official client whose requests become events (``to_event``) for ``handler``; each
    result is kept in ``results`` and turned back into the response the SDK reads."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        event = to_event(request)
        result = handler(event, FakeLambdaContext())
        results.append(result)
        headers = {
            name: value
            for name, value in (result.get("headers") or {}).items()
            if name.lower() != "content-length"
        }
        return httpx2.Response(result["statusCode"], headers=headers, content=response_body(result))

    return openai.OpenAI(
        api_key="sk-imagegw-dev",
        base_url="https://1234567890.execute-api.us-east-1.amazonaws.com/Prod/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
        max_retries=0,
    )


@pytest.fixture
def results() -> list[dict[str, Any]]:
    return []


@pytest.mark.parametrize("event_name", ["rest-v1-generate", "function-url-generate"])
def test_the_sdk_reads_the_buffered_stream(
    cold_handler: Handler, results: list[dict[str, Any]], event_name: str
) -> None:
    client = sdk_through(cold_handler, event_name, results)
    events = list(
        client.images.generate(
            model="local/sketch", prompt="a fox", stream=True, partial_images=2, size="256x256"
        )
    )
    assert [event.type for event in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    (result,) = results
    assert (header(result, "content-type") or "").startswith("text/event-stream")
    assert result["isBase64Encoded"] is False


def test_a_body_that_would_pass_the_limit_drops_partials_and_links_the_image(
    cold_handler: Handler, results: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Far below 6 MB, so that a 256x256 image does not fit inline: the same rule at any size.
    monkeypatch.setenv("IMAGEGW_MAX_RESPONSE_BYTES", "8192")
    client = sdk_through(cold_handler, "rest-v1-generate", results)
    events = list(
        client.images.generate(
            model="local/sketch", prompt="a fox", stream=True, partial_images=3, size="256x256"
        )
    )
    # No partial image fits next to the final one; the final one is a link instead.
    assert [event.type for event in events] == ["image_generation.completed"]
    completed: dict[str, Any] = events[0].model_dump()
    assert completed["url"].startswith(
        "https://1234567890.execute-api.us-east-1.amazonaws.com/Prod/"
    )
    assert completed["delivery"] == "url; reason=response_too_large"
    (result,) = results
    assert len(json.dumps(result)) <= 8192


def test_an_error_before_the_stream_is_a_plain_error_response(
    cold_handler: Handler, results: list[dict[str, Any]]
) -> None:
    client = sdk_through(cold_handler, "rest-v1-generate", results)
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="local/sketch", prompt="a fox", stream=True, n=2)
    assert caught.value.code == "unsupported_parameter"
    assert (header(results[0], "content-type") or "").startswith("application/json")
