"""The outermost layer of every HTTP request: request id, access log, last-resort errors.

Written as plain ASGI (not BaseHTTPMiddleware) so that multi-megabyte bodies pass through
without being copied. It is also the error boundary: an exception that escapes the app becomes
the generic OpenAI-shaped 500 here, with the request id, and is logged with its traceback.
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegw.errors import internal_error, render
from imagegw.logs import correlation_id

logger = logging.getLogger("imagegw.access")

REQUEST_ID_HEADER = b"x-request-id"


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        # Every log line of this request carries the id the caller sees in x-request-id.
        token = correlation_id.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error", extra={"request_id": request_id})
            if response_started:
                raise
            error = internal_error()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": error.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        *((k.encode(), v.encode()) for k, v in error.response_headers().items()),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": render(error)})
        finally:
            # The path only: query strings can carry link signatures.
            logger.info(
                "%s %s %s",
                scope.get("method"),
                scope.get("path"),
                status,
                extra={
                    "request_id": request_id,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            correlation_id.reset(token)
