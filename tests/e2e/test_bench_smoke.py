"""The benchmarks still run (one iteration of each, on a tiny image); no time is asserted.

``make bench`` is not part of the test run. This only keeps bench/ from rotting when the
gateway changes under it: every step must still get correct answers through the real stack.
"""

from __future__ import annotations

import math
from pathlib import Path

from bench import coldstart, compare, concurrency, latency, memory, procs
from bench.images import tiny_png


def test_every_benchmark_runs_once_through_the_real_stack(tmp_path: Path) -> None:
    image = tmp_path / "tiny.png"
    image.write_bytes(tiny_png())
    with (
        procs.upstream(image) as upstream,
        procs.gateway(procs.gateway_settings(upstream.base_url, tmp_path / "store")) as gateway,
    ):
        direct, through = latency.clients(upstream.base_url, gateway.base_url)
        used = memory.measure(through, gateway.pid, n=2, payload_bytes=1, images_bytes=1, rounds=1)
        for response_format in ("b64_json", "url"):
            paired = latency.paired(
                "smoke", direct, through, n=2, response_format=response_format, rounds=2, warmup=0
            )
            assert len(paired.added) == 2
            assert all(seconds > 0 for seconds in paired.direct + paired.gateway)
        burst = concurrency.measure(
            "smoke", upstream.base_url, gateway.base_url, requests=4, delay_s=0.2, rounds=1
        )
    assert used.idle_kib > 0
    assert used.peak_kib >= used.idle_kib
    assert len(burst.direct) == len(burst.gateway) == 1
    sample = coldstart.sample(
        coldstart.HANDLERS["gateway"], "rest-v1-models", str(tmp_path), "[]"
    )  # raises unless the first event is answered with 200
    assert sample.import_s > 0


def test_the_same_run_comparison_runs_once_against_a_baseline_revision(tmp_path: Path) -> None:
    """Section 7 of `make bench` (bench/compare.py), with this checkout as its own baseline
    (CI clones need not have the baseline commit): every figure is measured and reported."""
    (tmp_path / "noise.png").write_bytes(tiny_png())
    (tmp_path / "tiny.png").write_bytes(tiny_png())
    itself = compare.current()
    lines = compare.compare(compare.QUICK_COMPARE, itself, tmp_path)
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| figure")]
    assert len(rows) == 6
    for index, row in enumerate(rows):
        cells = [cell.strip() for cell in row.strip("|").split("|")[1:]]
        values = [float(cell.split()[0].rstrip("x")) for cell in cells]
        assert all(math.isfinite(value) for value in values), row
        if index > 0:  # added latency (row 0) may be below zero in two noisy rounds
            assert all(value > 0 for value in values), row
