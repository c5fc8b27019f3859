"""The Lambda entry point: ``imagegw.handler.handler``.

HTTP events (API Gateway REST v1, HTTP API v2, Function URL) go to the FastAPI app through
Mangum with lifespan off (Mangum would otherwise run startup and shutdown on every invocation).
Events of other services are answered with a clear error result until their dispatcher exists;
they never reach Mangum, which cannot handle them.

The app and the adapter are built on the first invocation, once per process: importing this
module does no I/O and builds nothing.
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from imagegw.app import create_app

_adapter: Mangum | None = None


def _http_adapter() -> Mangum:
    global _adapter
    if _adapter is None:
        _adapter = Mangum(create_app(), lifespan="off")
    return _adapter


def is_http_event(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and "requestContext" in event
        and ("httpMethod" in event or "version" in event)
    )


def handler(event: Any, context: Any) -> dict[str, Any]:
    if is_http_event(event):
        try:
            response: dict[str, Any] = _http_adapter()(event, context)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            # Mangum raises on events that look like HTTP but lack its required fields (the app
            # itself never raises: its middleware answers 500 as a last resort); answer
            # with the same shape as any other unusable event instead of a Lambda error.
            return _event_error(
                f"The event looks like an HTTP event but is malformed ({exc.__class__.__name__}).",
                code="malformed_event",
            )
        return response
    return _event_error(
        "This function only handles HTTP events (API Gateway or Function URL) "
        "in this version of the gateway.",
        code="unsupported_event",
    )


def _event_error(message: str, *, code: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": code,
        }
    }
