"""Concurrency: 64 requests at once while the upstream takes 200 ms to answer each.

A gateway that never blocks its event loop answers all of them in about 200 ms plus its own CPU
time for 64 requests. Alternating rounds: 64 at once to the upstream directly, then 64 at once
through the gateway, from the same client on the same kind of connections.

The client is a bare asyncio HTTP/1.1 client (64 kept-alive connections, prebuilt requests), not
the openai SDK: the SDK's async client spends 2 to 4 ms of CPU per request, so 64 of them took
1.7x to 2.5x the delay with no gateway at all, and the figure measured the client. This one
sends 64 requests in well under a millisecond; every answer is still read in full and checked
(status 200, an image in ``b64_json``). The target is on the gateway's wall time against the
direct one (same client, same load): the gateway's own share.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.images import SIZE
from bench.latency import PROMPT
from bench.procs import CLIENT_KEY, MODEL, UPSTREAM_KEY, UPSTREAM_MODEL
from bench.stats import percentile

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True)
class Concurrency:
    label: str
    requests: int
    delay_s: float
    direct: list[float]
    gateway: list[float]

    @property
    def gateway_multiple(self) -> float:
        """Median wall time through the gateway / the upstream delay."""
        return percentile(self.gateway, 0.5) / self.delay_s

    @property
    def direct_multiple(self) -> float:
        return percentile(self.direct, 0.5) / self.delay_s

    @property
    def paired_multiple(self) -> float:
        """Median over rounds of gateway wall / direct wall: the target is <= 1.5."""
        pairs = zip(self.gateway, self.direct, strict=True)
        return percentile([g / d for g, d in pairs], 0.5)


def request_bytes(base_url: str, api_key: str, model: str, *, b64_json: bool) -> bytes:
    """One ``POST .../images/generations`` as it goes on the wire."""
    url = urlsplit(base_url)
    document: dict[str, object] = {"model": model, "prompt": PROMPT, "n": 1, "size": SIZE}
    if b64_json:
        document["response_format"] = "b64_json"
    body = json.dumps(document).encode()
    head = (
        f"POST {url.path}/images/generations HTTP/1.1\r\nhost: {url.netloc}\r\n"
        f"authorization: Bearer {api_key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _exchange(connection: Connection, request: bytes) -> None:
    reader, writer = connection
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise RuntimeError("the answer has no content-length")
    body = await reader.readexactly(length)
    if status != 200 or b'"b64_json"' not in body:
        raise RuntimeError(f"unexpected answer {status}: {body[:200]!r}")


async def _burst(connections: list[Connection], request: bytes) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(_exchange(connection, request) for connection in connections))
    return time.perf_counter() - started


async def _open(base_url: str, count: int) -> list[Connection]:
    url = urlsplit(base_url)
    assert url.hostname is not None
    assert url.port is not None
    return [await asyncio.open_connection(url.hostname, url.port) for _ in range(count)]


async def _measure(
    label: str, upstream_url: str, gateway_url: str, requests: int, delay_s: float, rounds: int
) -> Concurrency:
    sides = {
        "direct": request_bytes(upstream_url, UPSTREAM_KEY, UPSTREAM_MODEL, b64_json=False),
        "gateway": request_bytes(gateway_url, CLIENT_KEY, MODEL, b64_json=True),
    }
    connections = {
        "direct": await _open(upstream_url, requests),
        "gateway": await _open(gateway_url, requests),
    }
    try:
        # Warms both sides up: the gateway opens its upstream connections (a real gateway keeps
        # them alive too) and loads what it loads on first use.
        for side, request in sides.items():
            await _burst(connections[side], request)
        times: dict[str, list[float]] = {"direct": [], "gateway": []}
        for index in range(rounds):
            order = ("direct", "gateway") if index % 2 == 0 else ("gateway", "direct")
            for side in order:
                times[side].append(await _burst(connections[side], sides[side]))
    finally:
        for side_connections in connections.values():
            for _, writer in side_connections:
                writer.close()
    return Concurrency(label, requests, delay_s, times["direct"], times["gateway"])


def measure(
    label: str,
    upstream_url: str,
    gateway_url: str,
    *,
    requests: int = 64,
    delay_s: float = 0.2,
    rounds: int = 5,
) -> Concurrency:
    return asyncio.run(_measure(label, upstream_url, gateway_url, requests, delay_s, rounds))
