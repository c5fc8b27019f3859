"""An S3 endpoint on 127.0.0.1 that checks presigned URLs the way S3 does, in front of moto.

moto's server stores and serves objects faithfully but never checks a presigned URL's signature
or expiry. ``S3Gate`` forwards every request to a moto server unchanged, except that a GET
carrying ``X-Amz-Signature`` is first checked by ``support.sigv4.refusal`` (signature with the
access key's secret, then expiry against the gate's clock) and refused with S3's 403 when it
fails. The gateway is pointed at the gate (``AWS_ENDPOINT_URL_S3``), so the URLs it hands out
name the gate, and a plain HTTP GET of such a URL is judged like one sent to S3.

    with S3Gate(moto_url, secrets={"testing": "testing"}) as gate:
        gate.now = lambda: expires_at + 2   # later: the same URL is refused
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from support.sigv4 import refusal

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class S3Gate:
    def __init__(self, upstream: str, *, secrets: Mapping[str, str]) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.secrets = dict(secrets)
        self.now: Callable[[], float] = time.time
        # What the gate decided for each presigned GET: (path, None | reason).
        self.decisions: list[tuple[str, str | None]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the gate is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> S3Gate:
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="s3-gate",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> S3Gate:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, gate: S3Gate) -> None:
        self.gate = gate
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines carry signatures, and the gate stands for AWS anyway."""

    def do_GET(self) -> None:
        gate = self.server.gate
        if "X-Amz-Signature=" in self.path:
            reason = refusal(self.path, dict(self.headers.items()), gate.secrets, gate.now())
            gate.decisions.append((self.path.split("?", 1)[0], reason))
            if reason is not None:
                self._refuse(reason)
                return
        self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    def _refuse(self, reason: str) -> None:
        code, _, message = reason.partition(": ")
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message or code}</Message></Error>"
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _forward(self) -> None:
        gate = self.server.gate
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP
        }
        connection = http.client.HTTPConnection(gate.upstream_host, gate.upstream_port, timeout=10)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            content = answer.read()
            self.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)
        finally:
            connection.close()
        self.close_connection = True
