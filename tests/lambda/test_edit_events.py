"""An edit through the real Lambda handler: a multipart body as API Gateway delivers it (base64)."""

from __future__ import annotations

import base64
import copy
import io
import json
from collections.abc import Callable
from typing import Any

import httpx
from lambda_harness import FakeLambdaContext, header, load_event, response_body
from PIL import Image
from test_lambda_streaming import sdk_answered_by

from support.edit_images import alpha_mask, gradient

pytest_plugins = ["lambda_fixtures"]

Handler = Callable[[Any, Any], dict[str, Any]]


def _edit_event(content: bytes, content_type: str) -> dict[str, Any]:
    """The REST API sample, turned into POST /v1/images/edits with a binary body."""
    event = copy.deepcopy(load_event("rest-v1-generate"))
    event["path"] = "/v1/images/edits"
    event["pathParameters"] = {"proxy": "v1/images/edits"}
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    # BinaryMediaTypes "*/*": API Gateway hands the body over as base64.
    event["body"] = base64.b64encode(content).decode("ascii")
    event["isBase64Encoded"] = True
    return event


def test_a_multipart_edit_event_is_served(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    source = gradient(64, 48)
    request = httpx.Request(
        "POST",
        "https://example.test/v1/images/edits",
        data={"model": "local/sketch", "prompt": "a moon"},
        files=[
            ("image", ("a.png", source, "image/png")),
            ("mask", ("m.png", alpha_mask(64, 48, change=(0, 0, 32, 48)), "image/png")),
        ],
    )
    event = _edit_event(request.read(), request.headers["content-type"])

    response = cold_handler(event, lambda_context)

    assert response["statusCode"] == 200, response.get("body")
    body = json.loads(response_body(response))
    edited = Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"])))
    original = Image.open(io.BytesIO(source))
    right = (32, 0, 64, 48)  # opaque in the mask: kept
    assert (
        edited.convert("RGB").crop(right).tobytes() == original.convert("RGB").crop(right).tobytes()
    )
    assert body["size"] == "64x48"


def test_the_sdk_streams_an_edit_through_the_buffered_handler(
    cold_handler: Handler,
) -> None:
    """``images.edit(stream=True)`` against the Lambda handler (Mangum buffers the stream):
    the SDK's own multipart request, delivered as API Gateway would, read back as events."""
    results: list[dict[str, Any]] = []
    client = sdk_answered_by(
        cold_handler,
        lambda request: _edit_event(request.read(), request.headers["content-type"]),
        results,
    )
    events = list(
        client.images.edit(
            model="local/sketch",
            image=("a.png", gradient(64, 48), "image/png"),
            prompt="a moon",
            stream=True,
            partial_images=2,
        )
    )

    assert [event.type for event in events] == [
        "image_edit.partial_image",
        "image_edit.partial_image",
        "image_edit.completed",
    ]
    (result,) = results
    assert (header(result, "content-type") or "").startswith("text/event-stream")
    completed = Image.open(io.BytesIO(base64.b64decode(events[-1].b64_json)))
    assert completed.size == (64, 48)
