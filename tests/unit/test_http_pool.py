"""The upstream client's connection pool against a real HTTP/1.1 server on 127.0.0.1.

``imagegw.fastpath.http_pool`` replaces httpcore's pool bookkeeping; these check that it still
reuses kept-alive connections, never hands out one the server closed, opens no more connections than
requests in flight, and closes idle connections beyond the keep-alive limit.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpcore
import httpx
import pytest

from imagegw.fastpath import http_pool
from imagegw.fastpath.base64text import AlphabetCensus, outside_alphabet
from imagegw.fastpath.http_pool import (
    READ_BYTES,
    LinearPool,
    ReadAheadBackend,
    post_for_body,
    upstream_client,
)


@dataclass
class Server:
    url: str
    opened: int = 0
    open_now: int = 0
    # The server closes each connection after its next response (without saying so).
    drop_after_response: bool = False
    delay: float = 0.05
    body: bytes = b'{"ok": true}'
    extra_headers: bytes = b""
    peers: set[int] = field(default_factory=set)
    # Notified whenever a connection ends, so a test can wait for the count it expects.
    closed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_until(self, settled: Callable[[], bool]) -> None:
        """Until ``settled()`` holds (checked as connections end); fails after 10 s."""
        async with self.closed:
            await asyncio.wait_for(self.closed.wait_for(settled), 10)


@asynccontextmanager
async def http_server() -> AsyncIterator[Server]:
    server = Server(url="")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.opened += 1
        server.open_now += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                # The upstream's latency (not a wait for state): it keeps requests in flight
                # together, so a burst needs as many connections as it has requests.
                await asyncio.sleep(server.delay)
                body = server.body
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
                writer.write(server.extra_headers)
                writer.write(b"content-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                if server.drop_after_response:
                    return
        finally:
            server.open_now -= 1
            writer.close()
            async with server.closed:
                server.closed.notify_all()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}/v1/images/generations"
    async with listener:
        yield server


async def _burst(client: httpx.AsyncClient, url: str, count: int) -> None:
    responses = await asyncio.gather(
        *(client.post(url, content=b'{"n": 1}', timeout=10) for _ in range(count))
    )
    assert [r.json() for r in responses] == [{"ok": True}] * count


def test_the_gateway_client_uses_the_linear_pool() -> None:
    async def scenario() -> None:
        async with upstream_client() as client:
            pool = client._transport._pool  # type: ignore[attr-defined]
            assert type(pool) is LinearPool
            assert isinstance(pool._network_backend, ReadAheadBackend)

    asyncio.run(scenario())


def test_other_httpcore_or_httpx_versions_get_the_stock_pool_and_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(http_pool, "_warned", False)

    async def pools() -> list[type]:
        kinds = []
        for _ in range(2):
            async with upstream_client() as client:
                pool = client._transport._pool  # type: ignore[attr-defined]
                kinds.append(type(pool))
                assert not isinstance(pool._network_backend, ReadAheadBackend)
        return kinds

    for library, version in (("httpcore", "1.0.10"), ("httpx", "0.29.0")):
        monkeypatch.setattr(http_pool, "_warned", False)
        with monkeypatch.context() as patched:
            patched.setattr(getattr(http_pool, library), "__version__", version)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="imagegw.fastpath.http_pool"):
                assert asyncio.run(pools()) == [httpcore.AsyncConnectionPool] * 2
            warnings = [r for r in caplog.records if r.name == "imagegw.fastpath.http_pool"]
            assert len(warnings) == 1
            assert "stock httpcore pool" in warnings[0].getMessage()


def test_a_burst_opens_one_connection_per_request_and_the_next_burst_reuses_them() -> None:
    async def scenario() -> None:
        async with http_server() as server, upstream_client() as client:
            await _burst(client, server.url, 64)
            assert server.opened == 64
            await _burst(client, server.url, 64)
            # httpx's default of 20 (or the 50 the gateway had) kept alive would reconnect here.
            assert server.opened == 64
            await _burst(client, server.url, 3)
            assert server.opened == 64

    asyncio.run(scenario())


def test_a_connection_the_server_closed_is_never_reused() -> None:
    async def scenario() -> None:
        async with http_server() as server, upstream_client() as client:
            server.drop_after_response = True
            server.delay = 0
            for expected in range(1, 6):
                response = await client.post(server.url, content=b"{}", timeout=10)
                assert response.json() == {"ok": True}
                assert server.opened == expected
                # Until the close has reached the client, the pool may not know of it.
                await server.wait_until(lambda: server.open_now == 0)

    asyncio.run(scenario())


def test_idle_connections_beyond_the_keepalive_limit_are_closed() -> None:
    async def scenario() -> None:
        async with http_server() as server, upstream_client(max_keepalive=2) as client:
            await _burst(client, server.url, 6)
            assert server.opened == 6
            # The pool closes the surplus when it next looks at its connections.
            await client.post(server.url, content=b"{}", timeout=10)
            await server.wait_until(lambda: server.open_now <= 2)
            assert server.open_now == 2

    asyncio.run(scenario())


def test_requests_beyond_max_connections_wait_for_a_free_connection() -> None:
    async def scenario() -> None:
        async with http_server() as server, upstream_client(max_connections=4) as client:
            await _burst(client, server.url, 12)
            assert server.opened == 4

    asyncio.run(scenario())


def test_a_large_body_arrives_whole_in_few_reads() -> None:
    async def scenario() -> None:
        async with http_server() as server, upstream_client() as client:
            # 3 MB of JSON, as an image answer is: far more than one read of either side.
            server.body = b'{"b64_json": "' + bytes(range(65, 91)) * 120_000 + b'"}'
            server.delay = 0
            reads: list[int] = []
            response = await client.post(server.url, content=b"{}", timeout=10)
            assert response.content == server.body
            # The connection's stream reads in pieces of up to READ_BYTES, not httpcore's 64 KiB.
            pool = client._transport._pool  # type: ignore[attr-defined]
            stream = pool.connections[0]._connection._network_stream
            original = stream._stream.read

            async def recording(max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
                reads.append(max_bytes)
                return await original(max_bytes, timeout)

            stream._stream.read = recording
            again = await client.post(server.url, content=b"{}", timeout=10)
            assert again.content == server.body
            assert reads
            assert set(reads) == {READ_BYTES}

    asyncio.run(scenario())


async def counted_post(
    client: httpx.AsyncClient, server: Server
) -> tuple[httpx.Response, bytearray, AlphabetCensus]:
    """``post_for_body`` to ``server``, counting the answer's bytes outside base64 as they come."""
    census = AlphabetCensus()
    response, body = await post_for_body(
        client, server.url, content=b"{}", headers={}, timeouts=httpx.Timeout(10), census=census
    )
    return response, body, census


def test_post_for_body_returns_every_byte_whatever_piece_the_buffer_is_sized_at() -> None:
    """The buffer is sized once 1/64 of the declared length has arrived (memory, bench round 6):
    the bytes before and after that piece, in answers of every size, arrive whole and in order."""

    async def scenario() -> None:
        async with http_server() as server, upstream_client() as client:
            server.delay = 0
            for size in (0, 1, 100, 65_536, 1_000_003, 5_000_000):
                server.body = os.urandom(size)
                response, body, census = await counted_post(client, server)
                assert response.status_code == 200
                assert len(body) == size
                assert body == server.body, size
                # Every piece counted once, before or after the buffer was sized.
                assert census.outside == outside_alphabet(server.body), size

    asyncio.run(scenario())


def test_post_for_body_reads_the_whole_body_plain_or_compressed() -> None:
    async def scenario() -> None:
        document = b'{"b64_json": "' + b"QUJD" * 300_000 + b'"}'
        async with http_server() as server, upstream_client() as client:
            server.delay = 0
            server.body = document
            response, body, census = await counted_post(client, server)
            assert response.status_code == 200
            assert body == document
            assert census.outside == outside_alphabet(document) == 9
            # Compressed: the declared length is not the body's; httpx decodes it.
            server.body = gzip.compress(document)
            server.extra_headers = b"content-encoding: gzip\r\n"
            response, body, census = await counted_post(client, server)
            assert response.headers["content-encoding"] == "gzip"
            assert body == document
            # The decoded bytes are counted, not the compressed ones.
            assert census.outside == 9

    asyncio.run(scenario())
