"""``make dev`` / container mode: uvicorn run with the Makefile's own ``UVICORN_FLAGS`` (issue 12).

The gateway is started as ``make dev`` starts it (the flags are read from the Makefile, so the
test cannot drift from it), in its own process, with its output captured. Then:

- a signed link is fetched (and a key is put in a query string, as a careless client might):
  no output line holds a key or a signature (``support.log_guard.find_leaks``), and every line
  is the gateway's JSON (uvicorn's access log wrote query strings);
- connections that trickle their headers are answered 408 and closed after the header timeout;
- a 1 MB header is refused with 431 before it is buffered;
and the server keeps serving throughout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.log_guard import find_leaks

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-devserver-test-0123456789abcdef"
HEADER_TIMEOUT = 1.0
_RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def makefile_flags() -> list[str]:
    """``UVICORN_FLAGS`` as the Makefile defines it, continuation lines joined."""
    text = (ROOT / "Makefile").read_text()
    match = re.search(r"^UVICORN_FLAGS := ((?:.*\\\n)*.*)$", text, re.M)
    assert match is not None, "the Makefile defines UVICORN_FLAGS"
    flags = match.group(1).replace("\\\n", " ").replace("$(CURDIR)", str(ROOT))
    return shlex.split(flags)


class DevServer:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.port: int | None = None
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            found = _RUNNING.search(line)
            if found:
                self.port = int(found.group(1))
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> None:
        assert self._ready.wait(30), "uvicorn did not start"
        assert self.port is not None, "\n".join(self.lines[-20:])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> list[str]:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._reader.join(timeout=5)
        return self.lines


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[DevServer]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("IMAGEGW_", "OPENAI_", "GOOGLE_", "GEMINI_", "BFL_"))
    }
    env.update(
        PYTHONPATH=str(ROOT / "functions" / "gateway"),
        IMAGEGW_API_KEYS=KEY,
        IMAGEGW_LOCAL_STORAGE_DIR=str(tmp_path / "images"),
        IMAGEGW_URL_SIGNING_SECRET="devserver-signing-secret",
        IMAGEGW_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
    )
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "imagegw.entrypoints.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *makefile_flags(),
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = DevServer(process)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def generate_link(server: DevServer) -> str:
    response = httpx.post(
        server.base_url + "/v1/images/generations",
        json={
            "model": "local/sketch",
            "prompt": "a fox",
            "size": "256x256",
            "response_format": "url",
        },
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    url: str = response.json()["data"][0]["url"]
    assert "signature=" in url
    return url


def test_signed_links_and_query_keys_never_reach_the_log(dev_server: DevServer) -> None:
    url = generate_link(dev_server)
    assert httpx.get(url, timeout=10).status_code == 200
    # A client that puts its key in the query string, and a tampered link.
    httpx.get(dev_server.base_url + f"/v1/models?api_key={KEY}", timeout=10)
    httpx.get(url.replace("signature=", "signature=0"), timeout=10)
    lines = dev_server.stop()
    assert lines, "the server logged nothing at all"
    leaks = [(line, find_leaks(line)) for line in lines if find_leaks(line) or KEY in line]
    assert leaks == []
    for line in lines:
        document = json.loads(line)  # every line is the gateway's JSON, uvicorn's included
        assert isinstance(document, dict)
        assert "message" in document
    # The gateway's own access log is there, with paths and no query strings.
    assert any("GET /v1/images/files/" in line for line in lines)


def _closed_or_refused(sock: socket.socket, *, within: float) -> bytes:
    """Trickle one header byte every 0.2 s until the server answers or closes; what it sent."""
    deadline = time.monotonic() + within
    received = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            chunk = sock.recv(65536)
            if not chunk:
                return received or b"(closed)"
            received += chunk
            continue
        try:
            sock.sendall(b"a")
        except OSError:
            return received or b"(closed)"
    return received


def test_connections_that_trickle_their_headers_are_timed_out(dev_server: DevServer) -> None:
    assert dev_server.port is not None
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(20):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", dev_server.port)))
            sock.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            sockets.append(sock)
        outcomes = [_closed_or_refused(sock, within=10 * HEADER_TIMEOUT) for sock in sockets]
    for outcome in outcomes:
        assert outcome.startswith(b"HTTP/1.1 408") or outcome == b"(closed)", outcome[:100]
    assert httpx.get(dev_server.base_url + "/health", timeout=10).status_code == 200


def test_a_megabyte_of_headers_is_refused_with_431(dev_server: DevServer) -> None:
    assert dev_server.port is not None
    with socket.create_connection(("127.0.0.1", dev_server.port), timeout=10) as sock:
        # The server may close before it has all of it.
        with contextlib.suppress(OSError):
            sock.sendall(
                b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nX-Huge: "
                + b"a" * 1_000_000
                + b"\r\n\r\n"
            )
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "request_headers_too_large"
    # An ordinary request with ordinary headers is still served.
    assert httpx.get(dev_server.base_url + "/health", timeout=10).status_code == 200
