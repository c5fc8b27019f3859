"""Added latency: the official client against the upstream directly and through the gateway.

Both calls go to the same fake upstream process; they alternate call by call (direct first on
even rounds, gateway first on odd ones) so that drift of a noisy machine hits both sides alike.
The figure is the paired difference gateway - direct of each round.

In ``url`` mode the direct call is the same request without the gateway (the upstream always
answers base64): the difference is what a caller pays for getting links instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import openai

from bench.images import SIZE
from bench.procs import CLIENT_KEY, MODEL, UPSTREAM_KEY, UPSTREAM_MODEL
from bench.stats import p50_p90_p99

PROMPT = "a lighthouse on a cliff at dusk, oil painting"
ResponseFormat = Literal["b64_json", "url"]


def client(base_url: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=60)


@dataclass(frozen=True)
class Paired:
    label: str
    direct: list[float]
    gateway: list[float]

    @property
    def added(self) -> list[float]:
        return [g - d for g, d in zip(self.gateway, self.direct, strict=True)]

    def row(self) -> str:
        a50, a90, a99 = (x * 1000 for x in p50_p90_p99(self.added))
        d50 = p50_p90_p99(self.direct)[0] * 1000
        g50 = p50_p90_p99(self.gateway)[0] * 1000
        return (
            f"| {self.label} | {len(self.added)} | {d50:.1f} | {g50:.1f} "
            f"| {a50:.1f} | {a90:.1f} | {a99:.1f} |"
        )


HEADER = (
    "| case | rounds | direct p50 ms | gateway p50 ms | added p50 ms | added p90 ms "
    "| added p99 ms |\n|---|---:|---:|---:|---:|---:|---:|"
)


def call_direct(direct: openai.OpenAI, n: int) -> float:
    started = time.perf_counter()
    result = direct.images.generate(model=UPSTREAM_MODEL, prompt=PROMPT, n=n, size=SIZE)
    elapsed = time.perf_counter() - started
    assert result.data is not None
    assert len(result.data) == n
    return elapsed


def call_gateway(gateway: openai.OpenAI, n: int, response_format: ResponseFormat) -> float:
    started = time.perf_counter()
    result = gateway.images.generate(
        model=MODEL,
        prompt=PROMPT,
        n=n,
        size=SIZE,
        response_format=response_format,
    )
    elapsed = time.perf_counter() - started
    assert result.data is not None
    assert len(result.data) == n
    first = result.data[0]
    assert first.url if response_format == "url" else first.b64_json, "nothing delivered"
    return elapsed


def paired(
    label: str,
    direct: openai.OpenAI,
    gateway: openai.OpenAI,
    *,
    n: int,
    response_format: ResponseFormat,
    rounds: int,
    warmup: int = 3,
) -> Paired:
    for _ in range(warmup):
        call_direct(direct, n)
        call_gateway(gateway, n, response_format)
    direct_times: list[float] = []
    gateway_times: list[float] = []
    for index in range(rounds):
        if index % 2:
            gateway_times.append(call_gateway(gateway, n, response_format))
            direct_times.append(call_direct(direct, n))
        else:
            direct_times.append(call_direct(direct, n))
            gateway_times.append(call_gateway(gateway, n, response_format))
    return Paired(label, direct_times, gateway_times)


def clients(upstream_url: str, gateway_url: str) -> tuple[openai.OpenAI, openai.OpenAI]:
    return client(upstream_url, UPSTREAM_KEY), client(gateway_url, CLIENT_KEY)
