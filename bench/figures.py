"""The numbers behind the charts, as one record: collected by ``bench.run``, kept as JSON.

``bench/figures.json`` is the record of the last ``make bench``; ``python -m bench.plots``
draws the charts again from it (or from any record) without measuring anything.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIGURES = Path(__file__).with_name("figures.json")


@dataclass(frozen=True)
class LatencyCase:
    """One case of the paired latency runs: each round's direct and gateway wall time."""

    label: str
    direct_ms: list[float]
    gateway_ms: list[float]

    @property
    def added_ms(self) -> list[float]:
        return [g - d for g, d in zip(self.gateway_ms, self.direct_ms, strict=True)]


@dataclass(frozen=True)
class ThroughputPoint:
    """Requests answered per second with ``concurrency`` requests in flight (p50 of rounds)."""

    image: str
    concurrency: int
    direct_rps: float
    gateway_rps: float


@dataclass(frozen=True)
class MemoryPoint:
    """The gateway's RSS around a b64_json request of ``n`` images (fresh process per n)."""

    n: int
    payload_mib: float
    growth_mib: float
    peak_mib: float
    idle_mib: float


@dataclass(frozen=True)
class ColdStartCase:
    """Import + first event of each fresh process, the gateway's and a minimal handler's."""

    event: str
    gateway_ms: list[float]
    minimal_ms: list[float]


@dataclass
class Figures:
    when: str
    latency: list[LatencyCase] = field(default_factory=list)
    throughput: list[ThroughputPoint] = field(default_factory=list)
    memory: list[MemoryPoint] = field(default_factory=list)
    coldstart: list[ColdStartCase] = field(default_factory=list)
    # The upstream delay of the throughput runs (requests/s is bounded by concurrency / delay).
    throughput_delay_ms: float = 200.0

    def dump(self, path: Path = FIGURES) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = FIGURES) -> Figures:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            when=str(raw["when"]),
            latency=[LatencyCase(**case) for case in raw.get("latency", [])],
            throughput=[ThroughputPoint(**point) for point in raw.get("throughput", [])],
            memory=[MemoryPoint(**point) for point in raw.get("memory", [])],
            coldstart=[ColdStartCase(**case) for case in raw.get("coldstart", [])],
            throughput_delay_ms=float(raw.get("throughput_delay_ms", 200.0)),
        )
