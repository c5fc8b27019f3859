"""glibc's malloc thresholds from the environment (GLIBC_TUNABLES) against glibc's defaults.

Every generation moves several copies of a multi-megabyte base64 body through the process. With
glibc's defaults each large buffer is a fresh ``mmap`` and the heap top is trimmed after every
request, so the next request faults its pages in again. The template (and ``make dev``) sets
``GLIBC_TUNABLES`` so glibc keeps them. Round 4 compared this with the in-process ``mallopt``
the gateway used before (bench/RESULTS.md): the same faults, CPU within noise, so the setting
moved out of the code. This measures the gateway under uvicorn answering n = 1 ``b64_json``
requests of a 2 MB image, the two variants alternating round by round against one fake
upstream: per request, minor page faults (a count, steady on a noisy machine) and the
gateway's CPU time (user + system, from /proc); after the run, its resident memory.

    python -m bench.allocator [--requests 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs
from bench.images import noise_png
from bench.latency import call_gateway, clients
from bench.stats import percentile

VARIANTS: dict[str, dict[str, str]] = {
    "GLIBC_TUNABLES (as deployed)": {"GLIBC_TUNABLES": procs.GLIBC_TUNABLES},
    "glibc defaults": {"GLIBC_TUNABLES": ""},
}
CLOCK_TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux


@dataclass
class Figures:
    faults: list[float] = field(default_factory=list)  # per request
    cpu_ms: list[float] = field(default_factory=list)  # per request
    rss_mib: list[float] = field(default_factory=list)  # after the round


def counters(pid: int) -> tuple[int, float]:
    """(minor faults, CPU seconds) of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the command: state(0) ... minflt(7) ... utime(11) stime(12).
    return int(fields[7]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def one_round(upstream_url: str, env: dict[str, str], requests: int) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="imagegw-alloc-") as storage:
        settings = {**procs.gateway_settings(upstream_url, Path(storage)), **env}
        with procs.gateway(settings) as gateway:
            _, client = clients(upstream_url, gateway.base_url)
            for _ in range(5):
                call_gateway(client, 1, "b64_json")
            faults, cpu = counters(gateway.pid)
            for _ in range(requests):
                call_gateway(client, 1, "b64_json")
            faults_after, cpu_after = counters(gateway.pid)
            rss = procs.rss_kib(gateway.pid)[0] / 1024
    return (faults_after - faults) / requests, (cpu_after - cpu) * 1000 / requests, rss


def measure(requests: int, rounds: int) -> dict[str, Figures]:
    figures = {name: Figures() for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="imagegw-alloc-img-") as directory:
        image = Path(directory) / "noise.png"
        image.write_bytes(noise_png(1024, 896))
        with procs.upstream(image) as upstream:
            for _ in range(rounds):
                for name, env in VARIANTS.items():
                    faults, cpu_ms, rss = one_round(upstream.base_url, env, requests)
                    figures[name].faults.append(faults)
                    figures[name].cpu_ms.append(cpu_ms)
                    figures[name].rss_mib.append(rss)
    return figures


def report(figures: dict[str, Figures], requests: int, rounds: int) -> str:
    base = figures["glibc defaults"]
    lines = [
        f"n = 1 b64_json, 2 MB image, {requests} requests x {rounds} rounds per variant "
        "(medians of the rounds; ratios against glibc's defaults in the same run)",
        "",
        "| variant | minor faults / request | CPU ms / request | vs defaults (CPU) "
        "| RSS after, MiB |",
        "|---|---|---|---|---|",
    ]
    base_cpu = percentile(base.cpu_ms, 0.5)
    for name, item in figures.items():
        cpu = percentile(item.cpu_ms, 0.5)
        lines.append(
            f"| {name} | {percentile(item.faults, 0.5):.0f} | {cpu:.2f} | "
            f"{cpu / base_cpu:.2f}x | {percentile(item.rss_mib, 0.5):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(report(measure(args.requests, args.rounds), args.requests, args.rounds))


if __name__ == "__main__":
    main()
