"""The gateway under uvicorn (``make dev``, containers): the request limits API Gateway enforces.

Under Lambda, API Gateway (or a Function URL) reads the request before the gateway sees it: it
caps the request line and headers at 10 KiB and gives up on a client that does not send them in
time. uvicorn's httptools protocol does neither: it buffers a header of any size (a 1 MB header
was accepted), and a connection that trickles its headers a byte at a time is never timed out
(its keep-alive timer only runs between requests, and any byte stops it).

``GuardedHttpToolsProtocol`` is uvicorn's protocol with both limits, chosen with
``--http imagegw.entrypoints.serving:GuardedHttpToolsProtocol`` (the Makefile's
``UVICORN_FLAGS``, docs/serving.md):

- headers (request line included) larger than ``IMAGEGW_MAX_HEADER_BYTES`` (10,240, as API
  Gateway) are refused with 431 and the connection closed, as soon as that many bytes arrived
  without the end of the headers (nothing larger is ever buffered);
- a request whose headers are not complete ``IMAGEGW_HEADER_TIMEOUT_SECONDS`` (10) after the
  connection opened, or after the previous answer, gets 408 and the connection is closed.

It subclasses uvicorn's own protocol (pinned in requirements-dev.txt), overriding only
connection and parser callbacks; ``tests/e2e/test_dev_server.py`` runs the Makefile's command.
Never imported under Lambda.
"""

from __future__ import annotations

import asyncio
import json
from functools import lru_cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from imagegw.settings import Settings

# The end of a request's headers (RFC 9112; a bare LF is tolerated by the parser too).
_HEADERS_END = (b"\r\n\r\n", b"\n\n")


@lru_cache(maxsize=1)
def _limits() -> tuple[int, float]:
    settings = Settings()
    return settings.max_header_bytes, settings.header_timeout_seconds


def _refusal(status: int, reason: str, message: str, code: str) -> bytes:
    body = json.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit and a header-read timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_header_bytes, self._header_timeout = _limits()
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = False
        self._header_bytes = 0
        self._tail = b""

    # -- when headers are expected

    def _expect_headers(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = 0
        self._tail = b""
        self._stop_header_timer()
        self._header_timer = self.loop.call_later(self._header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._expect_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._expect_headers()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._stop_header_timer()
        super().on_headers_complete()

    # -- the two limits

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            allowed = self._max_header_bytes - self._header_bytes
            if len(data) > allowed:
                # Over the limit unless the headers end within it (the rest is the body).
                window = self._tail + data[: max(allowed, 0)]
                if not any(end in window for end in _HEADERS_END):
                    self._refuse(
                        _refusal(
                            431,
                            "Request Header Fields Too Large",
                            f"The request's headers are larger than {self._max_header_bytes} "
                            "bytes.",
                            "request_headers_too_large",
                        )
                    )
                    return
            self._header_bytes += len(data)
            self._tail = data[-3:]
        super().data_received(data)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self._awaiting_headers or self.transport.is_closing():
            return
        if self._header_bytes == 0:
            # An idle connection: nothing to answer.
            self.transport.close()
            return
        self._refuse(
            _refusal(
                408,
                "Request Timeout",
                f"The request's headers did not arrive within {self._header_timeout:g} seconds.",
                "request_timeout",
            )
        )

    def _refuse(self, response: bytes) -> None:
        self._awaiting_headers = False
        self._stop_header_timer()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()
