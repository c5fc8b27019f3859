"""Runs every benchmark and prints one Markdown report; ``--write`` puts it in RESULTS.md.

    python -m bench.run            # the full run (`make bench`), a few minutes on 2 cores
    python -m bench.run --quick    # a handful of iterations: checks the benchmarks still run

The report replaces the part of ``bench/RESULTS.md`` between the two ``bench:`` markers; the
analysis around it (before/after, what was changed) is written by hand. With ``--write`` the
numbers behind the charts go to ``bench/figures.json`` and the charts (``bench/plots.py``) to
``bench/plots/*.png``, which the report shows.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import coldstart, compare, concurrency, latency, memory, plots, procs
from bench.figures import ColdStartCase, Figures, LatencyCase, MemoryPoint, ThroughputPoint
from bench.images import noise_png, tiny_png
from bench.stats import percentile, verdict

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN = "<!-- bench:begin (written by `make bench`) -->"
END = "<!-- bench:end -->"
PACKAGES = ("fastapi", "starlette", "pydantic", "mangum", "httpx", "h11", "uvicorn", "openai")


@dataclass(frozen=True)
class Plan:
    rounds_n1: int
    rounds_n4: int
    memory_rounds: int
    coldstart_samples: int
    concurrency_rounds: int
    concurrency_requests: int
    delayed_rounds: int
    s3: bool
    quick: bool = False
    # Section 7: the round 3 code beside this checkout (None: not run, e.g. no git history).
    baseline: compare.ComparePlan | None = compare.FULL_COMPARE
    # The throughput chart: requests in flight at once (32x32 PNG, upstream delay 200 ms).
    throughput_levels: tuple[int, ...] = (1, 4, 16, 64)
    # The memory chart: n of a b64_json request, each in a fresh gateway process.
    memory_ns: tuple[int, ...] = (1, 2, 4, 10)


FULL = Plan(
    rounds_n1=200,
    rounds_n4=60,
    memory_rounds=3,
    coldstart_samples=15,
    concurrency_rounds=10,
    concurrency_requests=64,
    delayed_rounds=8,
    s3=procs.s3_store_available(),
)
QUICK = Plan(
    2,
    2,
    1,
    1,
    1,
    8,
    1,
    s3=procs.s3_store_available(),
    quick=True,
    baseline=compare.QUICK_COMPARE,
    throughput_levels=(1, 8),
    memory_ns=(1, 10),
)
# A real upstream takes seconds per generation, about the same for n = 4 as for n = 1 (the
# images are generated side by side); 1 s is short for an image model, which only makes the
# n = 4 / n = 1 ratio harder to meet than in production.
GENERATION_DELAY_MS = 1000


def machine() -> list[str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        memory_gib = f"{int(meminfo[0].split()[1]) / 1024**2:.1f}"
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=procs.REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in PACKAGES)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"- when: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit `{commit or '?'}`",
        f"- machine: {os.cpu_count()} x {cpu}, {memory_gib} GiB RAM, "
        f"{platform.system()} {platform.release()}, load average at start {load}",
        f"- Python {platform.python_version()} ({sys.executable}); {versions}",
        f"- uvicorn with its defaults here: {uvicorn_stack()}",
    ]


def uvicorn_stack() -> str:
    """What uvicorn's ``--loop auto --http auto`` pick in the gateway process."""
    found = {name: importlib.util.find_spec(name) is not None for name in ("uvloop", "httptools")}
    loop = "uvloop" if found["uvloop"] else "asyncio loop (no uvloop installed)"
    http = "httptools" if found["httptools"] else "h11 (no httptools installed)"
    return f"{loop}, {http}"


@contextlib.contextmanager
def stack(
    image: Path, storage: Path, *, s3_endpoint: str | None = None, delay_ms: float = 0.0
) -> Iterator[tuple[procs.Upstream, procs.Gateway]]:
    with procs.upstream(image, delay_ms=delay_ms) as upstream:
        settings = procs.gateway_settings(upstream.base_url, storage)
        if s3_endpoint is not None:
            settings = procs.s3_settings(settings, s3_endpoint)
        with procs.gateway(settings) as gateway:
            yield upstream, gateway


def latency_section(
    plan: Plan, upstream: procs.Upstream, gateway: procs.Gateway, *, storage: str
) -> tuple[list[str], dict[str, latency.Paired]]:
    direct, through = latency.clients(upstream.base_url, gateway.base_url)
    results: dict[str, latency.Paired] = {}
    formats: tuple[latency.ResponseFormat, ...] = (
        ("b64_json", "url") if storage == "local" else ("url",)
    )
    for response_format in formats:
        for n in (1, 4):
            label = f"n={n} {response_format}" + (
                f" ({storage})" if response_format == "url" else ""
            )
            results[label] = latency.paired(
                label,
                direct,
                through,
                n=n,
                response_format=response_format,
                rounds=plan.rounds_n1 if n == 1 else plan.rounds_n4,
                warmup=2 if plan.quick else 5,
            )
    return [latency.HEADER, *(r.row() for r in results.values())], results


def parallel_lines(
    results: dict[str, latency.Paired], storage: str, *, delayed: bool = False
) -> list[str]:
    one = results[f"n=1 url ({storage})"]
    four = results[f"n=4 url ({storage})"]
    wall = percentile(four.gateway, 0.5) / percentile(one.gateway, 0.5)
    added = percentile(four.added, 0.5) / max(percentile(one.added, 0.5), 1e-6)
    upstream = percentile(four.direct, 0.5) / percentile(one.direct, 0.5)
    upstream_kind = f"{GENERATION_DELAY_MS} ms generation" if delayed else "instant"
    mark = f" ({verdict(wall, 1.5)})" if delayed else ""
    return [
        f"| url, {storage} store, {upstream_kind} upstream | {len(one.added)} | {wall:.2f}x{mark} "
        f"| {added:.2f}x | {upstream:.2f}x |"
    ]


def delayed_parallel(
    plan: Plan, image: Path, storage: Path, *, s3_endpoint: str | None = None
) -> list[str]:
    """url n = 4 against n = 1 with an upstream that takes GENERATION_DELAY_MS per call."""
    label = "s3" if s3_endpoint else "local"
    with stack(image, storage, s3_endpoint=s3_endpoint, delay_ms=GENERATION_DELAY_MS) as (
        upstream,
        gateway,
    ):
        direct, through = latency.clients(upstream.base_url, gateway.base_url)
        results = {
            f"n={n} url ({label})": latency.paired(
                f"n={n} url ({label})",
                direct,
                through,
                n=n,
                response_format="url",
                rounds=plan.delayed_rounds,
                warmup=1,
            )
            for n in (1, 4)
        }
    return parallel_lines(results, label, delayed=True)


def latency_cases(results: dict[str, latency.Paired]) -> list[LatencyCase]:
    return [
        LatencyCase(
            label,
            [seconds * 1000 for seconds in paired.direct],
            [seconds * 1000 for seconds in paired.gateway],
        )
        for label, paired in results.items()
    ]


def memory_point(n: int, used: memory.Memory) -> MemoryPoint:
    mib = 1024
    return MemoryPoint(
        n=n,
        payload_mib=used.payload_bytes / 2**20,
        growth_mib=used.growth_kib / mib,
        peak_mib=used.peak_kib / mib,
        idle_mib=used.idle_kib / mib,
    )


def throughput_point(result: concurrency.Concurrency, image: str) -> ThroughputPoint:
    return ThroughputPoint(
        image=image,
        concurrency=result.requests,
        direct_rps=result.requests / percentile(result.direct, 0.5),
        gateway_rps=result.requests / percentile(result.gateway, 0.5),
    )


def run(plan: Plan) -> tuple[str, Figures]:
    lines = ["## Last run", "", *machine(), ""]
    figures = Figures(when=f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imagegw-bench-") as scratch:
        work = Path(scratch)
        image = work / "noise.png"
        image.write_bytes(noise_png())
        tiny = work / "tiny.png"
        tiny.write_bytes(tiny_png())

        parallel = [
            "| delivery | rounds | gateway wall n=4 / n=1 (p50) | added ms n=4 / n=1 (p50) "
            "| upstream alone n=4 / n=1 (p50) |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += ["### 1. Added latency (gateway - direct, paired, interleaved)", ""]
        with stack(image, work / "store") as (upstream, gateway):
            table, results = latency_section(plan, upstream, gateway, storage="local")
            parallel += parallel_lines(results, "local")
            figures.latency += latency_cases(results)
        parallel += delayed_parallel(plan, image, work / "store")
        # A fresh gateway for each n: one that has served other requests keeps what its
        # allocator holds. The largest n is the figure of section 3.
        for n in plan.memory_ns:
            with stack(image, work / "store") as (upstream, gateway):
                probe = latency.client(upstream.base_url, procs.UPSTREAM_KEY)
                raw = probe.images.with_raw_response.generate(
                    model=procs.UPSTREAM_MODEL, prompt="p", n=n
                )
                used = memory.measure(
                    latency.client(gateway.base_url, procs.CLIENT_KEY),
                    gateway.pid,
                    n=n,
                    payload_bytes=len(raw.content),
                    images_bytes=n * image.stat().st_size,
                    rounds=plan.memory_rounds,
                )
            figures.memory.append(memory_point(n, used))
        largest_n = n
        lines += table
        if plan.s3:
            with (
                procs.moto_s3() as endpoint,
                stack(image, work / "s3", s3_endpoint=endpoint) as (
                    upstream,
                    gateway,
                ),
            ):
                table, results = latency_section(plan, upstream, gateway, storage="s3")
                parallel += parallel_lines(results, "s3")
                figures.latency += latency_cases(results)
            with procs.moto_s3() as endpoint:
                parallel += delayed_parallel(plan, image, work / "s3", s3_endpoint=endpoint)
            lines += table[1:]
        else:
            lines += ["", "(no S3 store in this checkout: `url` measured with the local store)"]
        lines += [""]

        lines += ["### 2. Cold start (fresh process each sample, alternating)", ""]
        lines += [
            "| first event | gateway import / first event / both ms (p50) "
            "| minimal import / first event / both ms (p50) | ratio (paired p50) "
            "| ratio incl. interpreter start |",
            "|---|---|---|---:|---:|",
        ]
        for event in ("rest-v1-models", "rest-v1-generate"):
            cold = coldstart.measure(
                event, samples=plan.coldstart_samples, warmup=0 if plan.quick else 1
            )
            g = " / ".join(f"{x * 1000:.0f}" for x in cold.medians(cold.gateway)[:3])
            m = " / ".join(f"{x * 1000:.0f}" for x in cold.medians(cold.minimal)[:3])
            figures.coldstart.append(
                ColdStartCase(
                    event,
                    [taken.in_process_s * 1000 for taken in cold.gateway],
                    [taken.in_process_s * 1000 for taken in cold.minimal],
                )
            )
            mark = f" ({verdict(cold.ratio, 1.15)})" if event == "rest-v1-models" else ""
            lines.append(
                f"| `{event}` | {g} | {m} | {cold.ratio:.2f}x{mark} | {cold.process_ratio:.2f}x |"
            )
        lines += [""]

        lines += [f"### 3. Memory (gateway process, n = {largest_n} in b64_json)", ""]
        mib = 1024
        lines += [
            f"- idle RSS {used.idle_kib / mib:.1f} MiB; peak RSS {used.peak_kib / mib:.1f} MiB "
            f"(max of {len(used.peaks_kib)} requests); largest growth of one request "
            f"{used.growth_kib / mib:.1f} MiB",
            f"- payload: upstream answer {used.payload_bytes / 2**20:.1f} MiB "
            f"({used.images_bytes / 2**20:.1f} MiB of PNG)",
            f"- growth = {used.payload_multiple:.2f}x the payload "
            f"({verdict(used.payload_multiple, 3.0)})",
            "",
        ]

        lines += ["### 4. Concurrency (64 requests at once, upstream delay 200 ms)", ""]
        lines += [
            "| image | direct wall / delay (p50) | gateway wall / delay (p50) "
            "| gateway / direct wall (paired p50) | rounds |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, picture, rounds in (
            ("32x32 PNG (scheduling)", tiny, plan.concurrency_rounds),
            ("1.5 MB PNG (bytes, 2 cores)", image, max(1, plan.concurrency_rounds // 2)),
        ):
            with procs.upstream(picture, delay_ms=200) as upstream:
                settings = procs.gateway_settings(upstream.base_url, work / "store")
                with procs.gateway(settings) as gateway:
                    result = concurrency.measure(
                        label,
                        upstream.base_url,
                        gateway.base_url,
                        requests=plan.concurrency_requests,
                        rounds=rounds,
                    )
                    if picture is tiny:  # the throughput chart: the same stack, other levels
                        for level in plan.throughput_levels:
                            at_level = result
                            if level != plan.concurrency_requests:
                                at_level = concurrency.measure(
                                    label,
                                    upstream.base_url,
                                    gateway.base_url,
                                    requests=level,
                                    rounds=rounds,
                                )
                            figures.throughput.append(throughput_point(at_level, "32x32 PNG"))
            mark = (
                f" ({verdict(result.paired_multiple, 1.5)})" if picture is tiny else " (no target)"
            )
            lines.append(
                f"| {label} | {result.direct_multiple:.2f}x | {result.gateway_multiple:.2f}x "
                f"| {result.paired_multiple:.2f}x{mark} | {rounds} |"
            )
        lines += [""]

        lines += [
            "### 5. Parallel delivery (url, n = 4 against n = 1)",
            "",
            "Instant upstream: the runs of 1. With a generation delay: a separate run, the "
            f"upstream waiting {GENERATION_DELAY_MS} ms before each answer (whatever n).",
            "",
        ]
        lines += parallel
        lines += ["", "### 6. Charts (`bench/plots/`, from `bench/figures.json`)", ""]
        lines += [line for chart in plots.markdown() for line in (chart, "")]
        if plan.baseline is not None:
            lines += [
                f"### 7. Against the round 3 code (`{compare.BASELINE_COMMIT}`), in this run",
                "",
                "Both revisions side by side, interleaved, against the same upstream "
                "(`bench/compare.py`); the figures of issue 11's bar.",
                "",
            ]
            with compare.at_commit(compare.BASELINE_COMMIT) as baseline:
                lines += compare.compare(plan.baseline, baseline, work)
            lines += [""]
        lines += [f"Whole run: {time.perf_counter() - started:.0f} s.", ""]
    return "\n".join(lines), figures


def write(report: str) -> None:
    text = RESULTS.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, found, tail = rest.partition(END)
    if not found:
        raise SystemExit(f"{RESULTS} has no {BEGIN} ... {END} section")
    RESULTS.write_text(f"{head}{BEGIN}\n{report}\n{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description="imagegw benchmarks")
    parser.add_argument("--quick", action="store_true", help="a few iterations only")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 runs")
    parser.add_argument(
        "--no-compare", action="store_true", help="skip the run of the round 3 code (section 7)"
    )
    arguments = parser.parse_args()
    plan = QUICK if arguments.quick else FULL
    if arguments.no_s3:
        plan = dataclasses.replace(plan, s3=False)
    if arguments.no_compare:
        plan = dataclasses.replace(plan, baseline=None)
    report, figures = run(plan)
    print(report)
    if arguments.write:
        write(report)
        figures.dump()
        for path in plots.render(figures):
            print(path)


if __name__ == "__main__":
    main()
