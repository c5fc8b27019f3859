"""Concurrency: 64 requests at once while the upstream takes 200 ms to answer each.

A gateway that never blocks its event loop answers all of them in about 200 ms. Measured with
the official async client, alternating rounds: 64 at once to the upstream directly (what the
client and the machine manage at best), then 64 at once through the gateway.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import openai

from bench.images import SIZE
from bench.latency import PROMPT
from bench.procs import CLIENT_KEY, MODEL, UPSTREAM_KEY, UPSTREAM_MODEL
from bench.stats import percentile


@dataclass(frozen=True)
class Concurrency:
    label: str
    requests: int
    delay_s: float
    direct: list[float]
    gateway: list[float]

    @property
    def gateway_multiple(self) -> float:
        """Median wall time through the gateway / the upstream delay: the target is <= 1.5."""
        return percentile(self.gateway, 0.5) / self.delay_s

    @property
    def direct_multiple(self) -> float:
        return percentile(self.direct, 0.5) / self.delay_s


async def _burst(client: openai.AsyncOpenAI, model: str, requests: int, gateway: bool) -> float:
    async def one() -> None:
        if gateway:
            result = await client.images.generate(
                model=model, prompt=PROMPT, n=1, size=SIZE, response_format="b64_json"
            )
        else:
            result = await client.images.generate(model=model, prompt=PROMPT, n=1, size=SIZE)
        assert result.data is not None
        assert result.data[0].b64_json

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    return time.perf_counter() - started


async def _measure(
    label: str, upstream_url: str, gateway_url: str, requests: int, delay_s: float, rounds: int
) -> Concurrency:
    direct_client = openai.AsyncOpenAI(
        base_url=upstream_url, api_key=UPSTREAM_KEY, max_retries=0, timeout=60
    )
    gateway_client = openai.AsyncOpenAI(
        base_url=gateway_url, api_key=CLIENT_KEY, max_retries=0, timeout=60
    )
    async with direct_client, gateway_client:
        # Opens the connections on both sides (a real client keeps them alive too).
        await _burst(direct_client, UPSTREAM_MODEL, requests, gateway=False)
        await _burst(gateway_client, MODEL, requests, gateway=True)
        direct: list[float] = []
        gateway: list[float] = []
        for index in range(rounds):
            sides = (False, True) if index % 2 == 0 else (True, False)
            for through_gateway in sides:
                if through_gateway:
                    gateway.append(await _burst(gateway_client, MODEL, requests, True))
                else:
                    direct.append(await _burst(direct_client, UPSTREAM_MODEL, requests, False))
    return Concurrency(label, requests, delay_s, direct, gateway)


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
