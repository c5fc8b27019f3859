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
warning says so (an upgrade costs the speed-up, never correctness).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import httpcore
import httpx

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterable

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
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        # Exactly httpcore's plain pool: proxies (subclasses) keep their own logic.
        if type(pool) is httpcore.AsyncConnectionPool:
            pool.__class__ = LinearPool
            pool._network_backend = ReadAheadBackend(pool._network_backend)
    return client


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
) -> tuple[httpx.Response, bytearray]:
    """POST ``content`` and read the answer into one buffer that only the caller holds.

    ``response.content`` would be two copies at the peak (httpx joins the pieces it read), and
    one that outlives the caller's use of it: a response is in a reference cycle with its
    stream, so its body stays until the garbage collector's next pass, next to everything made
    from it. With megabytes of base64 per image that set the gateway's peak memory. The
    returned response has its status and headers; its body is the buffer.
    """
    request = client.build_request("POST", url, content=content, headers=headers, timeout=timeouts)
    response = await client.send(request, stream=True)
    try:
        return response, await _read_body(response)
    finally:
        await response.aclose()


async def _read_body(response: httpx.Response) -> bytearray:
    if response.is_stream_consumed:
        # Read already: a transport that answers from memory (httpx.MockTransport in tests).
        return bytearray(response.content)
    declared = response.headers.get("content-length", "")
    if not declared.isdigit() or "content-encoding" in response.headers:
        # Compressed or of unknown length: decoded pieces appended as they come.
        body = bytearray()
        async for piece in response.aiter_bytes():
            body += piece
        return body
    body = bytearray(int(declared))
    view = memoryview(body)
    filled = 0
    try:
        async for piece in response.aiter_raw():
            # h11 never delivers more than the declared length, and fails on less.
            view[filled : filled + len(piece)] = piece
            filled += len(piece)
    finally:
        view.release()
    del body[filled:]
    return body
