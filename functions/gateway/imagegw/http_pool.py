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

It replaces one private method of httpcore 1.0.9 (pinned in layers/deps/requirements.txt);
``tests/unit/test_http_pool.py`` checks the behaviour against a real server, and
``upstream_client`` leaves any other pool (proxies, another httpcore) untouched.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpcore
import httpx

if TYPE_CHECKING:
    from httpcore._async.interfaces import AsyncConnectionInterface

# How often every idle connection's socket is probed for a close by the server.
SWEEP_SECONDS = 1.0
MAX_CONNECTIONS = 200


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
    for transport in (client._transport, *client._mounts.values()):
        pool = getattr(transport, "_pool", None)
        # Exactly httpcore's plain pool: proxies (subclasses) keep their own logic.
        if type(pool) is httpcore.AsyncConnectionPool:
            pool.__class__ = LinearPool
    return client
