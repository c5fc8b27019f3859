"""The shared upstream HTTP client: httpx, with connection-pool bookkeeping that stays linear.

httpcore 1.0.9's pool re-examines its connections every time a request starts or ends
(``_assign_requests_to_connections``), and quadratically: for each idle connection it counts all
connections again, and it probes the socket of every idle connection (through anyio, which
builds a dict of socket attributes per call) to see whether the server closed it. With 64
requests in flight over 64 kept-alive connections that was half of the gateway's CPU in py-spy
(bench/concurrency.py): milliseconds per request, serially, on the event loop.

``LinearPool`` keeps httpcore's rules with linear bookkeeping:

- idle connections are counted once per pass;
- the socket probe runs on the idle connection about to be reused (so a connection the server
  closed is still never handed out), and on every idle connection at most once a second, so
  closed and expired connections still leave the pool;
- a connection already promised to a waiting request is not promised to a second one (httpcore
  would, and the second request then goes round the pool again). HTTP/1.1 only: one request per
  connection, which is how the gateway's client is built.

Its connections also read what the socket has (up to 1 MiB) however little httpcore asks for:
httpcore asks for 64 KiB at a time, so a 2 MB image took 32 reads, each through h11, anyio (a
cancel scope, a split and copy of asyncio's 256 KiB chunks) and httpx; now it takes about 8.

It replaces one private method of httpcore 1.0.9 (pinned in layers/deps/requirements.txt);
``tests/unit/test_http_pool.py`` checks the behaviour against a real server, and
``upstream_client`` leaves any other pool (proxies) untouched. With other httpcore or httpx
versions than the ones it was written for it is not used at all: the stock pool serves, and one
warning says so (an upgrade costs the speed-up, never correctness). The client's connections
also parse answers with ``h11_buffer.PassThroughReceiveBuffer`` (no copies of body pieces; its
own guard on the h11 version).
"""

from __future__ import annotations

import logging
import sys
import time
import zlib
from typing import TYPE_CHECKING

import httpcore
import httpx

from imagegw.errors import UpstreamBadResponse
from imagegw.fastpath import h11_buffer
from imagegw.fastpath.base64text import AlphabetCensus
from imagegw.fastpath.content_length import declared_length

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncGenerator, Callable, Iterable

    from httpcore._async.interfaces import AsyncConnectionInterface
    from httpcore._backends.base import SOCKET_OPTION

logger = logging.getLogger(__name__)

# The versions whose private internals LinearPool and ReadAheadBackend rely on.
WRITTEN_FOR = {"httpcore": "1.0.9", "httpx": "0.28.1"}
_warned = False

# How often every idle connection's socket is probed for a close by the server.
SWEEP_SECONDS = 1.0
MAX_CONNECTIONS = 200
# Larger than asyncio's largest read (256 KiB): each read takes whatever the transport has.
READ_BYTES = 1024 * 1024


class LinearPool(httpcore.AsyncConnectionPool):
    _last_sweep = float("-inf")

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        closing: list[AsyncConnectionInterface] = []
        now = time.monotonic()
        sweep = now - self._last_sweep >= SWEEP_SECONDS
        if sweep:
            self._last_sweep = now
        kept: list[AsyncConnectionInterface] = []
        idle: list[AsyncConnectionInterface] = []
        for connection in self._connections:
            if connection.is_closed():
                continue
            if connection.is_idle():
                # Only idle connections can expire (httpcore sets the keep-alive expiry when a
                # connection goes idle); probing one is a socket poll, hence the sweeps.
                if sweep and connection.has_expired():
                    closing.append(connection)
                    continue
                idle.append(connection)
            kept.append(connection)
        surplus = len(idle) - self._max_keepalive_connections
        if surplus > 0:
            dropped = {id(connection) for connection in idle[:surplus]}
            closing.extend(idle[:surplus])
            kept = [connection for connection in kept if id(connection) not in dropped]
        self._connections[:] = kept

        reserved = {id(request.connection) for request in self._requests if request.connection}
        for pool_request in [request for request in self._requests if request.is_queued()]:
            origin = pool_request.request.url.origin
            chosen = self._reusable(origin, reserved, closing)
            if chosen is None and len(self._connections) < self._max_connections:
                chosen = self.create_connection(origin)
                self._connections.append(chosen)
            elif chosen is None:
                # The pool is full: make room by closing an idle connection (to another origin,
                # or it would have been reusable), as httpcore does.
                spare = next(
                    (c for c in self._connections if c.is_idle() and id(c) not in reserved),
                    None,
                )
                if spare is None:
                    continue  # the request waits for a connection to be released
                self._connections.remove(spare)
                closing.append(spare)
                chosen = self.create_connection(origin)
                self._connections.append(chosen)
            pool_request.assign_to_connection(chosen)
            reserved.add(id(chosen))
        return closing

    def _reusable(
        self,
        origin: httpcore.Origin,
        reserved: set[int],
        closing: list[AsyncConnectionInterface],
    ) -> AsyncConnectionInterface | None:
        for connection in list(self._connections):
            if id(connection) in reserved or not connection.can_handle_request(origin):
                continue
            if not connection.is_available():
                continue
            if connection.has_expired():
                self._connections.remove(connection)
                closing.append(connection)
                continue
            return connection
        return None


class ReadAheadStream(httpcore.AsyncNetworkStream):
    """A network stream whose reads return up to ``READ_BYTES``, whatever the caller asked."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    # The signatures (timeout included) are httpcore's network interface.
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        # h11, the only reader on these connections, takes any amount of data.
        return await self._stream.read(max(max_bytes, READ_BYTES), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        return ReadAheadStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class ReadAheadBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return ReadAheadStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        return ReadAheadStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def upstream_client(
    *, max_connections: int = MAX_CONNECTIONS, max_keepalive: int | None = None
) -> httpx.AsyncClient:
    """The gateway's upstream client: up to 200 connections, all of them kept alive when idle.

    Keeping as many idle connections as the pool allows (``max_keepalive`` None) means a burst
    of concurrent requests does not reconnect (a TLS handshake each) after the previous burst;
    idle connections still close after httpx's keep-alive expiry (5 s).
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections if max_keepalive is None else max_keepalive,
    )
    client = httpx.AsyncClient(limits=limits, follow_redirects=False)
    if not written_for_installed_versions():
        return client
    h11_buffer.install()
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        # Exactly httpcore's plain pool: proxies (subclasses) keep their own logic.
        if type(pool) is httpcore.AsyncConnectionPool:
            pool.__class__ = LinearPool
            pool._network_backend = ReadAheadBackend(pool._network_backend)
    return client


# A declared length is allocated at once when at least 1/CREDIBLE_FRACTION of it has arrived.
# The pieces held until then leave a hole below the buffer once freed: at 1/8 that was 2.4 MB of
# a 19 MB answer still resident at the peak; at 1/64 the peak is within 0.7 MiB of one buffer
# allocated before any byte (bench/RESULTS.md, round 6). A hostile 1 GiB declaration still
# needs 16 MiB to arrive before the gigabyte is allocated, and never beyond the cap.
CREDIBLE_FRACTION = 64
# Encodings the gateway asks for: the ones it can decode with a bound on what comes out (zlib).
# httpx would also offer br and zstd when their packages are installed, and decode them without
# one: a few kilobytes of compressed zeros would become gigabytes.
ACCEPT_ENCODING = "gzip, deflate"
# Decompressed output is produced in pieces of at most this size, each checked against the cap.
_INFLATE_PIECE = 1024 * 1024


def written_for_installed_versions() -> bool:
    """True when httpcore and httpx are the versions this module's internals were written for;
    else warns once per process (the stock pool then serves)."""
    global _warned
    installed = {"httpcore": httpcore.__version__, "httpx": httpx.__version__}
    if installed == WRITTEN_FOR:
        return True
    if not _warned:
        _warned = True
        logger.warning(
            "upstream pool: stock httpcore pool in use (fastpath/http_pool.py was written for "
            "other versions)",
            extra={"installed": installed, "written_for": WRITTEN_FOR},
        )
    return False


async def post_for_body(
    client: httpx.AsyncClient,
    url: httpx.URL | str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeouts: httpx.Timeout,
    max_bytes: int | None = None,
    census: AlphabetCensus | None = None,
) -> tuple[httpx.Response, bytearray]:
    """POST ``content`` and read the answer into one buffer that only the caller holds.

    ``response.content`` would be two copies at the peak (httpx joins the pieces it read), and
    one that outlives the caller's use of it: a response is in a reference cycle with its
    stream, so its body stays until the garbage collector's next pass, next to everything made
    from it. With megabytes of base64 per image that set the gateway's peak memory. The
    returned response has its status and headers; its body is the buffer.

    The buffer grows with the bytes that actually arrive, never with what the upstream declares
    (a ``Content-Length`` of a gigabyte followed by ten bytes costs ten bytes). An answer larger
    than ``max_bytes`` (after decompression) is cut off where it crosses the cap, or at once
    when its declared length already does: ``UpstreamBadResponse`` (a 502), and the connection
    is closed rather than returned to the pool. ``providers.base.answer_limit`` says how much a
    request can legitimately produce. ``census``: see ``read_body``.
    """
    request = client.build_request(
        "POST",
        url,
        content=content,
        headers={"Accept-Encoding": ACCEPT_ENCODING, **headers},
        timeout=timeouts,
    )
    response = await client.send(request, stream=True)
    try:
        return response, await read_body(response, max_bytes, census)
    finally:
        # An answer not read to its end closes the connection (httpcore never reuses it).
        await response.aclose()


def answer_too_large(limit: int) -> UpstreamBadResponse:
    return UpstreamBadResponse(
        f"The upstream's answer is larger than {limit} bytes, more than this request can "
        "produce; the gateway cut it off."
    )


async def read_body(
    response: httpx.Response,
    max_bytes: int | None,
    census: AlphabetCensus | None = None,
    *,
    too_large: Callable[[int], Exception] | None = None,
) -> bytearray:
    """The answer in one buffer, sized once what has arrived makes its declared length credible.

    A buffer grown piece by piece is copied each time it outgrows its block, and the blocks it
    leaves behind stay resident: for a 19 MB answer that was 13 MiB more peak memory than one
    buffer of the right size (bench/RESULTS.md, round 6). So the first pieces are kept as they
    are, and once 1/``CREDIBLE_FRACTION`` of a declared length has arrived the buffer for all
    of it is allocated, the pieces copied in, and the rest read into it: a buffer is never more
    than ``CREDIBLE_FRACTION`` times what was received (a gigabyte declared and ten bytes sent
    cost ten bytes), and never more than the cap.

    ``census`` counts the bytes outside the base64 alphabet of each piece as it arrives;
    ``too_large`` makes the exception for an answer beyond ``max_bytes`` (``iter_body``).
    """
    declared = _identity_length(response)
    pieces: list[bytes] = []
    received = 0
    body: bytearray | None = None
    view: memoryview | None = None
    async for piece in iter_body(response, max_bytes, too_large=too_large):
        if census is not None:
            census.add(piece)
        if view is not None:
            if received + len(piece) > len(view):
                raise UpstreamBadResponse("The upstream sent more than the length it declared.")
            view[received : received + len(piece)] = piece
            received += len(piece)
            continue
        pieces.append(piece)
        received += len(piece)
        if (
            declared is not None
            and declared >= received
            and (received * CREDIBLE_FRACTION >= declared)
        ):
            body = bytearray(declared)
            view = memoryview(body)
            view[:received] = b"".join(pieces) if len(pieces) > 1 else pieces[0]
            pieces.clear()
    if body is None or view is None:
        return bytearray().join(pieces)
    view.release()
    # h11 delivers exactly the declared length or fails; a transport that does not is trimmed.
    del body[received:]
    return body


def _identity_length(response: httpx.Response) -> int | None:
    """The declared length of an uncompressed answer still to be read (else None)."""
    if response.is_stream_consumed:
        return None
    if response.headers.get("content-encoding", "").strip().lower() not in ("", "identity"):
        return None
    return declared_length(response.headers.get("content-length"))


async def iter_body(
    response: httpx.Response,
    max_bytes: int | None,
    *,
    too_large: Callable[[int], Exception] | None = None,
    undecodable: Callable[[str], Exception] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The answer's (decoded) bytes as they arrive, never more than ``max_bytes`` in all.

    For answers read piece by piece (event streams) under the same rules as ``post_for_body``:
    a declared length beyond the cap is refused before a byte is read, a body that grows
    beyond it is cut off (``UpstreamBadResponse``), gzip and deflate are inflated in bounded
    pieces and other encodings refused. Send the request with ``ACCEPT_ENCODING`` and close
    the response when done: one not read to its end is then never reused.

    ``too_large(limit)`` and ``undecodable(reason)`` make the exceptions raised (default: the
    502 ``UpstreamBadResponse``); a reader of something a caller named (an image URL) raises
    the caller's 4xx instead.
    """
    limit = sys.maxsize if max_bytes is None else max_bytes
    refuse_size = too_large or answer_too_large
    if response.is_stream_consumed:
        # Read already: a transport that answers from memory (httpx.MockTransport in tests).
        if len(response.content) > limit:
            raise refuse_size(limit)
        yield response.content
        return
    declared = declared_length(response.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise refuse_size(limit)
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        received = 0
        async for piece in response.aiter_raw():
            # h11 never delivers more than a declared length, and fails on less; without one
            # (chunked, or until close) the cap is all that ends it.
            received += len(piece)
            if received > limit:
                raise refuse_size(limit)
            yield piece
        return
    inflater = _Inflater(encoding, limit, refuse_size, undecodable or _undecodable)
    async for piece in response.aiter_raw():
        inflated = inflater.feed(piece)
        if inflated:
            yield inflated
    rest = inflater.finish()
    if rest:
        yield rest


def _undecodable(reason: str) -> UpstreamBadResponse:
    return UpstreamBadResponse(f"The upstream answered with {reason}.")


class _Inflater:
    """gzip or deflate decoded in bounded pieces, the total checked against the cap."""

    def __init__(
        self,
        encoding: str,
        limit: int,
        too_large: Callable[[int], Exception],
        undecodable: Callable[[str], Exception],
    ) -> None:
        self._too_large = too_large
        self._undecodable = undecodable
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise undecodable(f"an encoding the gateway did not ask for ({encoding[:40]!r})")
        # gzip: the gzip header (or zlib's, which some servers send); deflate: zlib's wrapper,
        # or raw deflate as some servers send it (httpx accepts both too).
        self._raw_fallback = encoding == "deflate"
        self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32 if not self._raw_fallback else 15)
        self._started = False
        self._limit = limit
        self._produced = 0

    def feed(self, data: bytes) -> bytes:
        try:
            return self._inflate(data)
        except zlib.error as exc:
            if self._raw_fallback and not self._started:
                self._raw_fallback = False
                self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.feed(data)
            raise self._undecodable("a compressed body that does not decompress") from exc

    def _inflate(self, data: bytes) -> bytes:
        pieces = []
        while data and not self._decoder.eof:
            piece = self._decoder.decompress(data, _INFLATE_PIECE)
            self._started = True
            self._count(len(piece))
            pieces.append(piece)
            data = self._decoder.unconsumed_tail
        return b"".join(pieces)

    def finish(self) -> bytes:
        try:
            rest = self._decoder.flush(_INFLATE_PIECE)
        except zlib.error as exc:
            raise self._undecodable("a compressed body that does not decompress") from exc
        self._count(len(rest))
        return rest

    def _count(self, produced: int) -> None:
        self._produced += produced
        if self._produced > self._limit:
            raise self._too_large(self._limit)
