"""A hostile upstream on 127.0.0.1, and the cases every provider must survive (issue 12).

``HostileUpstream`` is a raw socket server: it reads a request (head and ``Content-Length`` body)
and answers with whatever bytes the current ``Abuse`` writes, however wrong: lengths that lie,
bodies that stop, JSON nested 100,000 deep, a gigabyte declared and ten bytes sent, a chunked
answer without end, a gzip bomb, a slow drip, an error that echoes the request's credentials.

``ABUSES`` lists the cases with what the gateway must answer (status and code, in OpenAI's
envelope, never a 500). ``ProviderTarget`` says how to build a provider against the server and
what request to send; ``run_abuse`` runs one case against one target and checks the outcome.
``tests/providers/test_hostile_upstreams.py`` runs every case against every target in
``PROVIDER_TARGETS``.

A new provider plugs in with one more ``ProviderTarget`` in ``PROVIDER_TARGETS`` of
``tests/providers/test_hostile_upstreams.py`` (a factory taking the server's origin, a catalog
request, the credentials it sends, and its error envelope when OpenAI's and Google's do not fit):

    ProviderTarget(
        "stability",
        lambda origin, http: StabilityProvider(http, api_key=KEY, base_url=origin),
        lambda: catalog_request("stability/stable-image-core"),
        secrets=(KEY,),
        error_body=lambda message: json.dumps({"errors": [message]}).encode(),
    )

or, from its own test module, parametrize over ``ABUSES`` and ``await run_abuse(target, abuse)``.
A provider passes every case by reading answers with ``http_pool.post_for_body(...,
max_bytes=answer_limit(request))`` (or ``iter_body``) and parsing them with
``providers.base.parse_answer`` / ``error_document``.
"""

from __future__ import annotations

import functools
import json
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from imagegw.catalog import Catalog, load_catalog
from imagegw.errors import GatewayError, render
from imagegw.providers.base import ImageProvider, ImageRequest

GIB = 1024**3
# JSON nested this deep makes json.loads raise RecursionError.
DEPTH = 100_000
# The request timeout the cases run with; the slow drip must end within it.
TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class ReceivedRequest:
    head: bytes
    headers: dict[str, str]  # lower-case names
    body: bytes


Writer = Callable[[socket.socket, ReceivedRequest, "HostileUpstream"], None]


@dataclass(frozen=True)
class Abuse:
    """One way to answer badly, and what the gateway must make of it."""

    name: str
    write: Writer
    status: int
    # Accepted codes of the gateway's error (several when the transport decides which).
    codes: tuple[str | None, ...]
    # True when the gateway must have dropped the connection before the answer ended.
    dropped: bool = False


# ------------------------------------------------------------------------------------ writers


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(
    body: bytes,
    *,
    status: int = 200,
    declared: str | None = None,
    headers: dict[str, str] | None = None,
) -> Writer:
    """``body`` after a head that declares ``declared`` (default: the true length), then close."""

    def write(sock: socket.socket, request: ReceivedRequest, server: HostileUpstream) -> None:
        length = str(len(body)) if declared is None else declared
        head = {"Content-Type": "application/json", "Content-Length": length, **(headers or {})}
        sock.sendall(_head(status, head) + body)

    return write


def endless(*, chunked: bool, status: int = 200) -> Writer:
    """Data without end (chunked, or until close) until the client hangs up."""

    def write(sock: socket.socket, request: ReceivedRequest, server: HostileUpstream) -> None:
        headers = {"Content-Type": "application/json"}
        headers["Transfer-Encoding" if chunked else "Connection"] = (
            "chunked" if chunked else "close"
        )
        piece = b'{"data": [' + b" " * (256 * 1024)
        frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
        sock.sendall(_head(status, headers))
        sent = 0
        # A bound so a broken gateway fails the test instead of filling the machine.
        while sent < 4 * GIB:
            try:
                sock.sendall(frame)
            except OSError:
                server.disconnected.set()
                return
            sent += len(frame)

    return write


def drip(*, interval: float = 0.05) -> Writer:
    """A plausible head, then one byte per ``interval``: never done before the deadline."""

    def write(sock: socket.socket, request: ReceivedRequest, server: HostileUpstream) -> None:
        sock.sendall(_head(200, {"Content-Type": "application/json", "Content-Length": "100000"}))
        deadline = time.monotonic() + 4 * TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                sock.sendall(b" ")
            except OSError:
                server.disconnected.set()
                return
            if server.stopping.wait(interval):
                return

    return write


def echo_credentials(status: int = 400) -> Writer:
    """An error whose message repeats every request header, as a careless proxy's might."""

    def write(sock: socket.socket, request: ReceivedRequest, server: HostileUpstream) -> None:
        echoed = "; ".join(f"{name}: {value}" for name, value in request.headers.items())
        message = f"Bad request. We received: {echoed}. Body: {request.body[:200]!r}"
        body = server.error_body(message)
        answer(body, status=status)(sock, request, server)

    return write


@functools.lru_cache(maxsize=4)
def gzip_bomb(expanded_bytes: int) -> bytes:
    """``expanded_bytes`` of spaces inside a JSON string, gzip-compressed (about 1000:1)."""
    # Streamed: the expanded text is never whole in memory here either.
    deflater = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    pieces = [deflater.compress(b'{"data": [{"b64_json": "')]
    block = b"A" * (1024 * 1024)
    for _ in range(expanded_bytes // len(block)):
        pieces.append(deflater.compress(block))
    pieces.append(deflater.compress(b'"}]}'))
    pieces.append(deflater.flush())
    return b"".join(pieces)


# A real 1x1 PNG, base64.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP4z8DwHwAFAAH/"
    "iZk9HQAAAABJRU5ErkJggg=="
)


def universal_answer(extra: bytes = b"") -> bytes:
    """A success body every provider here reads as one image: OpenAI's ``data``, Imagen's
    ``predictions`` and Gemini's ``candidates`` side by side, plus ``extra`` members."""
    image = PNG_B64.encode()
    body = (
        b'{"data": [{"b64_json": "' + image + b'"}], '
        b'"predictions": [{"bytesBase64Encoded": "' + image + b'", "mimeType": "image/png"}], '
        b'"candidates": [{"content": {"parts": [{"inlineData": {"data": "' + image + b'", '
        b'"mimeType": "image/png"}}]}}]'
    )
    return body + (b", " + extra if extra else b"") + b"}"


def _deep(status: int, opener: bytes, closer: bytes) -> Writer:
    return answer(opener * DEPTH + closer * DEPTH, status=status)


# ------------------------------------------------------------------------------------ cases

BOMB_BYTES = 64 * 1024 * 1024  # beyond every target request's cap (about 12 MiB)

ABUSES: tuple[Abuse, ...] = (
    Abuse(
        "declares-1GiB-sends-10-bytes",
        answer(b'{"data": [', declared=str(GIB)),
        502,
        ("upstream_bad_response",),
    ),
    Abuse(
        "declares-64GiB",
        answer(b'{"data": [', declared=str(64 * GIB)),
        502,
        ("upstream_bad_response",),
    ),
    Abuse(
        "declares-5000-digits",
        answer(b'{"data": [', declared="9" * 5000),
        502,
        ("upstream_error", "upstream_bad_response"),
    ),
    Abuse(
        "error-declares-1GiB",
        answer(b'{"error": {', status=500, declared=str(GIB)),
        502,
        ("upstream_bad_response",),
    ),
    Abuse(
        "truncated-body",
        answer(b'{"data": [{"b64_json": "iVBOR', declared="5000"),
        502,
        ("upstream_error", "upstream_bad_response"),
    ),
    Abuse(
        "longer-than-declared",
        answer(b'{"data": [{"b64_json": "iVBORw0KGgo="}]}' + b" " * 1000, declared="10"),
        502,
        ("upstream_bad_response",),
    ),
    Abuse(
        "negative-length",
        answer(b"{}", declared="-5"),
        502,
        ("upstream_error", "upstream_bad_response"),
    ),
    Abuse("deep-arrays-success", _deep(200, b"[", b"]"), 502, ("upstream_bad_response",)),
    Abuse(
        "deep-inside-a-valid-answer",
        answer(universal_answer(b'"extra": ' + b"[" * DEPTH + b"]" * DEPTH)),
        502,
        ("upstream_bad_response",),
    ),
    Abuse("deep-objects-success", _deep(200, b'{"a":', b"}"), 502, ("upstream_bad_response",)),
    Abuse(
        "deep-error-400",
        answer(b'{"error": ' + b"[" * DEPTH + b"]" * DEPTH + b"}", status=400),
        502,
        ("upstream_bad_response",),
    ),
    Abuse("deep-error-429", _deep(429, b"[", b"]"), 502, ("upstream_bad_response",)),
    # A 5xx is judged by its status; a provider may read its body or not.
    Abuse(
        "deep-error-500",
        _deep(500, b'{"error":', b"}"),
        502,
        ("upstream_bad_response", "upstream_error"),
    ),
    Abuse(
        "nan-in-a-valid-answer",
        answer(universal_answer(b'"usage": {"total_tokens": NaN}')),
        502,
        ("upstream_bad_response",),
    ),
    Abuse(
        "infinity-in-a-valid-answer",
        answer(universal_answer(b'"usage": {"total_tokens": 1e999}')),
        502,
        ("upstream_bad_response",),
    ),
    Abuse("not-json", answer(b"<html>hello</html>"), 502, ("upstream_bad_response",)),
    Abuse(
        "endless-chunked",
        endless(chunked=True),
        502,
        ("upstream_bad_response",),
        dropped=True,
    ),
    Abuse(
        "endless-until-close",
        endless(chunked=False),
        502,
        ("upstream_bad_response",),
        dropped=True,
    ),
    Abuse(
        "gzip-bomb",
        lambda sock, request, server: answer(
            gzip_bomb(BOMB_BYTES), headers={"Content-Encoding": "gzip"}
        )(sock, request, server),
        502,
        ("upstream_bad_response",),
    ),
    Abuse(
        "unasked-encoding",
        answer(b"\x00" * 64, headers={"Content-Encoding": "br"}),
        502,
        ("upstream_bad_response",),
    ),
    # An error body is read under the same cap: a provider may not read it whole.
    Abuse(
        "error-endless-chunked",
        endless(chunked=True, status=500),
        502,
        ("upstream_bad_response",),
        dropped=True,
    ),
    Abuse("slow-drip", drip(), 504, ("upstream_timeout",), dropped=True),
)


# ------------------------------------------------------------------------------------ server


def default_error_body(message: str) -> bytes:
    """An error envelope both OpenAI's and Google's translators read as a request problem."""
    return json.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "status": "INVALID_ARGUMENT",
                "code": 400,
            }
        }
    ).encode()


class HostileUpstream:
    def __init__(self, error_body: Callable[[str], bytes] = default_error_body) -> None:
        self.abuse: Writer = answer(b"{}")
        self.error_body = error_body
        self.requests: list[ReceivedRequest] = []
        self.failures: list[BaseException] = []
        self.disconnected = threading.Event()
        self.stopping = threading.Event()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HostileUpstream:
        upstream = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                upstream._serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HostileUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        try:
            request = _read_request(sock)
            if request is None:
                return
            self.requests.append(request)
            self.abuse(sock, request, self)
        except OSError:
            self.disconnected.set()
        except BaseException as exc:  # reported by the test, never swallowed
            self.failures.append(exc)
        finally:
            sock.close()


def _read_request(sock: socket.socket) -> ReceivedRequest | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return ReceivedRequest(head, headers, body)


# ------------------------------------------------------------------------------------ targets


@dataclass(frozen=True)
class ProviderTarget:
    """How to point one provider at the hostile upstream, and what to ask it."""

    name: str
    # (the upstream's origin, "http://127.0.0.1:PORT"; the shared HTTP client) -> a provider
    build: Callable[[str, httpx.AsyncClient], ImageProvider]
    # The request sent; its timeout should be TIMEOUT_SECONDS.
    request: Callable[[], ImageRequest]
    # Credentials the provider sends upstream: none may come back in any message.
    secrets: tuple[str, ...]
    error_body: Callable[[str], bytes] = field(default=default_error_body)


def catalog_request(model_id: str, **fields: object) -> ImageRequest:
    spec = _catalog().get(model_id)
    assert spec is not None, model_id
    values: dict[str, object] = {"prompt": "a lighthouse at dusk", "n": 1, **fields}
    return ImageRequest(
        spec=spec,
        upstream_model=spec.upstream_model,
        timeout_seconds=TIMEOUT_SECONDS,
        **values,  # type: ignore[arg-type]
    )


@functools.lru_cache(maxsize=1)
def _catalog() -> Catalog:
    return load_catalog()


async def outcome(target: ProviderTarget, upstream: HostileUpstream) -> GatewayError:
    """The gateway error the provider raises against the upstream's current abuse."""
    from imagegw.fastpath.http_pool import upstream_client

    async with upstream_client() as http:
        provider = target.build(upstream.origin, http)
        with pytest.raises(GatewayError) as caught:
            await provider.generate(target.request())
        await provider.aclose()
    return caught.value


async def run_abuse(target: ProviderTarget, abuse: Abuse) -> None:
    """One hostile case against one provider: the documented error, in OpenAI's envelope."""
    with HostileUpstream(target.error_body) as upstream:
        upstream.abuse = abuse.write
        error = await outcome(target, upstream)
        if abuse.dropped:
            # The gateway hung up: the server's next write failed (it never sends it all).
            assert upstream.disconnected.wait(10), "the connection was not dropped"
    assert upstream.failures == []
    assert error.status == abuse.status, (abuse.name, error.status, error.message)
    assert error.code in abuse.codes, (abuse.name, error.code, error.message)
    body = json.loads(render(error))
    assert set(body["error"]) == {"message", "type", "param", "code"}
