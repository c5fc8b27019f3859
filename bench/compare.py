"""The gateway against an earlier revision of itself, both measured in the same run.

Figures taken on different days are not comparable on a shared machine (the load moves every
absolute figure, and ratios against a baseline only partly cancel it). So ``make bench`` also
runs the round 3 code (``BASELINE_COMMIT``, the figures bench/RESULTS.md's issue 11 asks not to
lose) beside this checkout, interleaved sample by sample against the same upstream:

- added latency: the official client, n = 1 ``b64_json``; each round calls the upstream
  directly, then both gateways (in alternating order); also the CPU each gateway process spent
  per request (``/proc/<pid>/stat``), which the load moves much less than wall time;
- cold start: a fresh process per sample importing each revision's Lambda handler and
  answering ``events/rest-v1-models.json``, and the minimal handler, alternating;
- memory: a fresh gateway per sample, one n = 1 request, then the largest growth of three
  n = 10 requests over the RSS each started from (as ``bench/memory.py``);
- concurrency: 64 requests at once, upstream delay 200 ms, 32x32 PNG: bursts to the upstream
  directly and to both gateways, rotating.

The baseline's ``functions/gateway`` (and its layer's requirements, for the cold start's list
of packages Lambda would not have) comes out of git with ``git archive``; its entry points have
the flat layout's names. Nothing here judges: the table shows both and their ratio.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import coldstart, concurrency, latency, procs
from bench.images import noise_png, tiny_png
from bench.stats import percentile

# The end of round 3 (bench/RESULTS.md): cold start met, added latency 5-6 ms, memory 1.86x.
BASELINE_COMMIT = "f658e89"
PAYLOAD_N = 10


@dataclass(frozen=True)
class Revision:
    label: str
    package_dir: Path  # holds imagegw/
    app: str  # the uvicorn factory
    handler: str  # the Lambda handler module
    blocked: str  # JSON list of modules the cold-start probe hides


def current() -> Revision:
    return Revision(
        "this checkout",
        procs.PACKAGE_DIR,
        procs.APP,
        coldstart.HANDLERS["gateway"],
        json.dumps(coldstart.blocked_modules()),
    )


@contextlib.contextmanager
def at_commit(commit: str) -> Iterator[Revision]:
    """The gateway package of ``commit``, unpacked from git into a temporary directory."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "functions/gateway", "layers/deps"],
        cwd=procs.REPO,
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory(prefix="imagegw-baseline-") as directory:
        root = Path(directory)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(root, filter="data")
        package_dir = root / "functions" / "gateway"
        flat = (package_dir / "imagegw" / "app.py").is_file()
        yield Revision(
            f"`{commit}`",
            package_dir,
            "imagegw.app:create_app" if flat else procs.APP,
            "imagegw.handler" if flat else coldstart.HANDLERS["gateway"],
            json.dumps(coldstart.blocked_modules(root)),
        )


@dataclass
class Side:
    added_s: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    cold_s: list[float] = field(default_factory=list)
    cold_ratio: list[float] = field(default_factory=list)  # paired, over the minimal handler
    growth: list[float] = field(default_factory=list)  # payload multiples
    burst_ratio: list[float] = field(default_factory=list)  # paired, over direct


@dataclass(frozen=True)
class ComparePlan:
    latency_rounds: int = 150
    coldstart_samples: int = 15
    memory_samples: int = 4
    concurrency_rounds: int = 10
    concurrency_requests: int = 64


FULL_COMPARE = ComparePlan()
QUICK_COMPARE = ComparePlan(2, 1, 1, 1, 4)


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _rotation(index: int, sides: list[str]) -> list[str]:
    shift = index % len(sides)
    return sides[shift:] + sides[:shift]


def _latency(
    plan: ComparePlan, revisions: dict[str, Revision], sides: dict[str, Side], work: Path
) -> None:
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(procs.upstream(work / "noise.png"))
        settings = procs.gateway_settings(upstream.base_url, work / "store")
        gateways = {
            name: stack.enter_context(
                procs.gateway(settings, package_dir=revision.package_dir, app=revision.app)
            )
            for name, revision in revisions.items()
        }
        direct = latency.client(upstream.base_url, procs.UPSTREAM_KEY)
        clients = {
            name: latency.client(g.base_url, procs.CLIENT_KEY) for name, g in gateways.items()
        }
        for client in clients.values():  # first use: each loads what it loads lazily
            latency.call_gateway(client, 1, "b64_json")
        for index in range(plan.latency_rounds):
            direct_s = latency.call_direct(direct, 1)
            for name in _rotation(index, list(clients)):
                pid = gateways[name].pid
                before = _cpu_ms(pid)
                through_s = latency.call_gateway(clients[name], 1, "b64_json")
                sides[name].cpu_ms.append(_cpu_ms(pid) - before)
                sides[name].added_s.append(through_s - direct_s)


def _cold_start(plan: ComparePlan, revisions: dict[str, Revision], sides: dict[str, Side]) -> None:
    minimal = coldstart.HANDLERS["minimal"]
    here = json.dumps(coldstart.blocked_modules())
    with tempfile.TemporaryDirectory(prefix="imagegw-bench-") as storage:

        def run(name: str) -> coldstart.Sample:
            if name == "minimal":
                return coldstart.sample(minimal, "rest-v1-models", storage, here)
            revision = revisions[name]
            return coldstart.sample(
                revision.handler,
                "rest-v1-models",
                storage,
                revision.blocked,
                package_dir=revision.package_dir,
            )

        order = [*revisions, "minimal"]
        for name in order:  # compiles the .pyc files every sample then reads
            run(name)
        for index in range(plan.coldstart_samples):
            taken = {name: run(name) for name in _rotation(index, order)}
            for name in revisions:
                sides[name].cold_s.append(taken[name].in_process_s)
                sides[name].cold_ratio.append(
                    taken[name].in_process_s / taken["minimal"].in_process_s
                )


def _memory(
    plan: ComparePlan, revisions: dict[str, Revision], sides: dict[str, Side], work: Path
) -> None:
    with procs.upstream(work / "noise.png") as upstream:
        payload = len(
            httpx.post(
                upstream.base_url + "/images/generations",
                json={"model": procs.UPSTREAM_MODEL, "prompt": "p", "n": PAYLOAD_N},
                headers={"authorization": f"Bearer {procs.UPSTREAM_KEY}"},
                timeout=60,
            ).content
        )
        settings = procs.gateway_settings(upstream.base_url, work / "store")
        for index in range(plan.memory_samples):
            for name in _rotation(index, list(revisions)):
                revision = revisions[name]
                with procs.gateway(
                    settings, package_dir=revision.package_dir, app=revision.app
                ) as gateway:
                    client = latency.client(gateway.base_url, procs.CLIENT_KEY)
                    latency.call_gateway(client, 1, "b64_json")
                    growth = []
                    for _ in range(3):
                        before, _ = procs.rss_kib(gateway.pid)
                        procs.reset_peak_rss(gateway.pid)
                        latency.call_gateway(client, PAYLOAD_N, "b64_json")
                        growth.append(procs.rss_kib(gateway.pid)[1] - before)
                    sides[name].growth.append(max(growth) * 1024 / payload)


def _concurrency(
    plan: ComparePlan, revisions: dict[str, Revision], sides: dict[str, Side], work: Path
) -> None:
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(procs.upstream(work / "tiny.png", delay_ms=200))
        settings = procs.gateway_settings(upstream.base_url, work / "store")
        gateways = {
            name: stack.enter_context(
                procs.gateway(settings, package_dir=revision.package_dir, app=revision.app)
            )
            for name, revision in revisions.items()
        }
        for index in range(plan.concurrency_rounds):
            for name in _rotation(index, list(gateways)):
                result = concurrency.measure(
                    name,
                    upstream.base_url,
                    gateways[name].base_url,
                    requests=plan.concurrency_requests,
                    rounds=1,
                )
                sides[name].burst_ratio.append(result.paired_multiple)


def compare(plan: ComparePlan, baseline: Revision, work: Path) -> list[str]:
    """Section 7 of the report: this checkout against ``baseline``, measured side by side."""
    revisions = {"baseline": baseline, "now": current()}
    sides = {name: Side() for name in revisions}
    _latency(plan, revisions, sides, work)
    _cold_start(plan, revisions, sides)
    _memory(plan, revisions, sides, work)
    _concurrency(plan, revisions, sides, work)
    old, new = sides["baseline"], sides["now"]

    def row(figure: str, before: list[float], after: list[float], unit: str, scale: float) -> str:
        b, a = percentile(before, 0.5) * scale, percentile(after, 0.5) * scale
        return f"| {figure} | {b:.2f}{unit} | {a:.2f}{unit} | {a / b:.2f} |"

    def mean_row(figure: str, before: list[float], after: list[float], unit: str) -> str:
        # CPU time is counted in clock ticks (10 ms): only the mean over many requests says much.
        b, a = sum(before) / len(before), sum(after) / len(after)
        return f"| {figure} | {b:.2f}{unit} | {a:.2f}{unit} | {a / b:.2f} |"

    return [
        "| figure (p50) | round 3 code | this checkout | this / round 3 |",
        "|---|---:|---:|---:|",
        row("added latency, n=1 b64_json", old.added_s, new.added_s, " ms", 1000),
        mean_row("gateway CPU per n=1 b64_json request (mean)", old.cpu_ms, new.cpu_ms, " ms"),
        row("cold start, rest-v1-models (in process)", old.cold_s, new.cold_s, " ms", 1000),
        row("cold start / minimal handler (paired)", old.cold_ratio, new.cold_ratio, "x", 1),
        row(f"memory growth, n={PAYLOAD_N} / payload", old.growth, new.growth, "x", 1),
        row("64 at once, 200 ms / direct (paired)", old.burst_ratio, new.burst_ratio, "x", 1),
        "",
        f"Samples: {len(new.added_s)} latency rounds, {len(new.cold_s)} cold starts, "
        f"{len(new.growth)} fresh gateways for memory, {len(new.burst_ratio)} bursts per side.",
    ]


def main() -> None:
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="imagegw-bench-") as scratch,
        at_commit(BASELINE_COMMIT) as baseline,
    ):
        work = Path(scratch)
        (work / "noise.png").write_bytes(noise_png())
        (work / "tiny.png").write_bytes(tiny_png())
        plan = QUICK_COMPARE if "--quick" in sys.argv else ComparePlan()
        lines = compare(plan, baseline, work)
    print("\n".join(lines))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
