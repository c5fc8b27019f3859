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

from .app import create_app

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
        response: dict[str, Any] = _http_adapter()(event, context)
        return response
    return {
        "error": {
            "message": "This function only handles HTTP events (API Gateway or Function URL) "
            "in this version of the gateway.",
            "type": "invalid_request_error",
            "param": None,
            "code": "unsupported_event",
        }
    }
