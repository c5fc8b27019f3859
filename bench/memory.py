"""Memory: peak RSS of the gateway process answering n = 10 images in ``b64_json``.

The gateway runs under uvicorn in its own process. "Idle" is its RSS after it has answered one
n = 1 request (so that everything loaded on first use is counted as the process, not as the
payload). The peak is the kernel's high-water mark (VmHWM), reset just before each n = 10
request; each request's growth is its peak minus the RSS just before it (the allocator keeps
some of what an earlier request freed, so later requests start higher). The payload is the
upstream's answer (about what the gateway sends on).
"""

from __future__ import annotations

from dataclasses import dataclass

import openai

from bench.latency import call_gateway
from bench.procs import reset_peak_rss, rss_kib


@dataclass(frozen=True)
class Memory:
    idle_kib: int
    before_kib: list[int]
    peaks_kib: list[int]
    payload_bytes: int
    images_bytes: int

    @property
    def peak_kib(self) -> int:
        return max(self.peaks_kib)

    @property
    def growth_kib(self) -> int:
        """The largest growth of one request over the RSS it started from."""
        pairs = zip(self.before_kib, self.peaks_kib, strict=True)
        return max(peak - before for before, peak in pairs)

    @property
    def payload_multiple(self) -> float:
        """Growth / payload: the target is at most 3 (peak at most idle + 3x payload)."""
        return self.growth_kib * 1024 / self.payload_bytes


def measure(
    gateway: openai.OpenAI, pid: int, *, n: int, payload_bytes: int, images_bytes: int, rounds: int
) -> Memory:
    call_gateway(gateway, 1, "b64_json")
    idle, _ = rss_kib(pid)
    before: list[int] = []
    peaks: list[int] = []
    for _ in range(rounds):
        reset_peak_rss(pid)
        before.append(rss_kib(pid)[0])
        call_gateway(gateway, n, "b64_json")
        peaks.append(rss_kib(pid)[1])
    return Memory(idle, before, peaks, payload_bytes, images_bytes)
