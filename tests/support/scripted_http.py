"""A scripted HTTP upstream on 127.0.0.1: the server part the Bedrock and Stability fakes share.

The stdlib ``ThreadingHTTPServer`` runs in a daemon thread and records every request as it
arrived. A subclass decides each answer (``handle``: checks the request as the real upstream
would, then takes the next scripted reply) and turns its own reply types into bytes (``render``).
The wire-level misbehaviours are common to all:

    Raw(body, status)     any bytes as the body (garbage, an HTML error page ...)
    Truncated(body)       a Content-Length larger than the body, then the connection closes
    Delay(seconds, then)  wait (provokes timeouts), then answer ``then``
    Hangup()              read the request, close the connection without answering
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support.fake_openai import RecordedRequest


@dataclass(frozen=True)
class Raw:
    body: bytes
    status: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True)
class Truncated:
    body: bytes
    missing: int = 1000
    content_type: str = "application/json"


@dataclass(frozen=True)
class Delay:
    seconds: float
    then: Any


@dataclass(frozen=True)
class Hangup:
    """Read the request, then close the connection without answering."""


Rendered = tuple[int, dict[str, str], bytes]


class ScriptedServer:
    name = "scripted"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.handler_errors: list[BaseException] = []
        self.default: Any = None
        self.in_flight = 0
        self.max_in_flight = 0
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- what subclasses provide

    def handle(self, recorded: RecordedRequest) -> Any:
        """The reply to ``recorded``: a refusal of a malformed request, else ``next_reply()``."""
        raise NotImplementedError

    def render(self, reply: Any, recorded: RecordedRequest) -> Rendered:
        raise NotImplementedError

    # -- script

    def enqueue(self, *replies: Any) -> None:
        with self._lock:
            self._queue.extend(replies)

    def next_reply(self) -> Any:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def reset(self, default: Any) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self.default = default
            self.max_in_flight = 0

    # -- lifecycle

    @property
    def origin(self) -> str:
        assert self._server is not None, "the fake is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Any:
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-{self.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait(self, seconds: float) -> bool:
        return self._stopping.wait(seconds)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, fake: ScriptedServer) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            self.fake.handler_errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the recorded requests are the log."""

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        recorded = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            raw_headers=list(self.headers.items()),
            body=body,
            json=_json(body),
        )
        self.close_connection = True
        with fake._lock:
            fake.requests.append(recorded)
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            self._answer(fake.handle(recorded), recorded)
        finally:
            with fake._lock:
                fake.in_flight -= 1

    def _answer(self, reply: Any, recorded: RecordedRequest) -> None:
        fake = self.server.fake
        if isinstance(reply, Delay):
            if fake.wait(reply.seconds):
                return
            self._answer(reply.then, recorded)
            return
        if isinstance(reply, Hangup):
            return
        declared: int | None = None
        if isinstance(reply, Raw):
            status, headers, body = reply.status, {"Content-Type": reply.content_type}, reply.body
        elif isinstance(reply, Truncated):
            status, headers, body = 200, {"Content-Type": reply.content_type}, reply.body
            declared = len(body) + reply.missing
        else:
            status, headers, body = fake.render(reply, recorded)
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(declared if declared is not None else len(body)))
            self.send_header("Connection", "close")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            return
