"""The charts of bench/RESULTS.md, drawn with matplotlib from a ``Figures`` record.

    python -m bench.plots                   # bench/figures.json -> bench/plots/*.png
    python -m bench.plots other.json DIR    # any record, any directory

``make bench`` draws them after measuring. Pure drawing: nothing here measures, and matplotlib
is imported (with its file-only Agg backend) when a chart is drawn, not when this is imported.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.figures import FIGURES, Figures

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOTS = Path(__file__).with_name("plots")
# (file name, alt text): the order RESULTS.md shows them in.
CHARTS = (
    ("added-latency.png", "Added latency: gateway against direct, per case"),
    ("throughput.png", "Throughput against concurrency, direct and through the gateway"),
    ("memory.png", "Gateway memory against n (b64_json)"),
    ("coldstart.png", "Cold start: the gateway against a minimal handler"),
)
DIRECT = "#7f8c8d"
GATEWAY = "#2f6fdf"
DPI = 110


def _new(columns: int = 1, width: float = 7.5) -> tuple[Figure, list[Axes]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, columns, figsize=(width, 4.2), squeeze=False)
    return figure, list(axes[0])


def _save(figure: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def latency_chart(figures: Figures, path: Path) -> Path:
    figure, (boxes, cdf) = _new(2, width=11.5)
    cases = figures.latency
    positions: list[float] = []
    data: list[list[float]] = []
    colours: list[str] = []
    for index, case in enumerate(cases):
        positions += [index * 3 + 1, index * 3 + 2]
        data += [case.direct_ms, case.gateway_ms]
        colours += [DIRECT, GATEWAY]
    if data:
        drawn = boxes.boxplot(data, positions=positions, widths=0.8, patch_artist=True, sym=".")
        for patch, colour in zip(drawn["boxes"], colours, strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.7)
    boxes.set_xticks([index * 3 + 1.5 for index in range(len(cases))])
    boxes.set_xticklabels([case.label for case in cases], rotation=25, ha="right", fontsize=8)
    boxes.set_ylabel("wall time per request (ms)")
    boxes.set_title("Direct (grey) and through the gateway (blue)")
    boxes.grid(axis="y", alpha=0.3)
    for case in cases:
        added = sorted(case.added_ms)
        share = [(rank + 1) / len(added) for rank in range(len(added))]
        cdf.step(added, share, where="post", label=case.label)
    cdf.set_xlabel("added latency, gateway - direct, paired (ms)")
    cdf.set_ylabel("share of requests")
    cdf.set_title("Added latency distribution")
    cdf.grid(alpha=0.3)
    if cases:
        cdf.legend(fontsize=8)
    return _save(figure, path)


def throughput_chart(figures: Figures, path: Path) -> Path:
    figure, (axes,) = _new()
    images = sorted({point.image for point in figures.throughput})
    for image in images:
        points = sorted(
            (point for point in figures.throughput if point.image == image),
            key=lambda point: point.concurrency,
        )
        levels = [point.concurrency for point in points]
        axes.plot(levels, [p.direct_rps for p in points], "o--", color=DIRECT, label="direct")
        axes.plot(levels, [p.gateway_rps for p in points], "o-", color=GATEWAY, label="gateway")
    levels = sorted({point.concurrency for point in figures.throughput})
    if levels:
        ideal = [level / (figures.throughput_delay_ms / 1000) for level in levels]
        axes.plot(levels, ideal, ":", color="black", alpha=0.5, label="concurrency / delay")
        axes.set_xscale("log", base=2)
        axes.set_xticks(levels, [str(level) for level in levels])
        axes.legend()
    title = ", ".join(images) if images else "no data"
    axes.set_title(f"Throughput ({title}; upstream delay {figures.throughput_delay_ms:.0f} ms)")
    axes.set_xlabel("requests in flight")
    axes.set_ylabel("requests per second (p50 of rounds)")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def memory_chart(figures: Figures, path: Path) -> Path:
    figure, (axes,) = _new()
    points = sorted(figures.memory, key=lambda point: point.n)
    n = [point.n for point in points]
    axes.plot(n, [p.growth_mib for p in points], "o-", color=GATEWAY, label="growth of a request")
    axes.plot(n, [p.payload_mib for p in points], "s--", color=DIRECT, label="upstream answer")
    axes.plot(
        n,
        [3 * p.payload_mib for p in points],
        ":",
        color="#c62828",
        label="target: 3x the answer",
    )
    axes.plot(n, [p.peak_mib - p.idle_mib for p in points], "^-", alpha=0.6, label="peak - idle")
    axes.set_xlabel("n (images per b64_json request)")
    axes.set_ylabel("MiB")
    axes.set_title("Gateway memory against n")
    axes.grid(alpha=0.3)
    if points:
        axes.set_xticks(n)
        axes.legend()
    return _save(figure, path)


def coldstart_chart(figures: Figures, path: Path) -> Path:
    figure, (axes,) = _new()
    cases = figures.coldstart
    data: list[list[float]] = []
    positions: list[float] = []
    colours: list[str] = []
    for index, case in enumerate(cases):
        data += [case.minimal_ms, case.gateway_ms]
        positions += [index * 3 + 1, index * 3 + 2]
        colours += [DIRECT, GATEWAY]
    if data:
        drawn = axes.boxplot(data, positions=positions, widths=0.8, patch_artist=True, sym=".")
        for patch, colour in zip(drawn["boxes"], colours, strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.7)
    axes.set_xticks([index * 3 + 1.5 for index in range(len(cases))])
    axes.set_xticklabels([case.event for case in cases])
    axes.set_ylabel("import + first event, in-process (ms)")
    axes.set_title("Cold start: minimal handler (grey), gateway (blue)")
    axes.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def render(figures: Figures, directory: Path = PLOTS) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    draw = (latency_chart, throughput_chart, memory_chart, coldstart_chart)
    return [chart(figures, directory / name) for chart, (name, _) in zip(draw, CHARTS, strict=True)]


def markdown(prefix: str = "plots/") -> list[str]:
    """The RESULTS.md lines that show the charts (paths relative to bench/)."""
    return [f"![{alt}]({prefix}{name})" for name, alt in CHARTS]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="draw bench/RESULTS.md's charts")
    parser.add_argument("figures", nargs="?", type=Path, default=FIGURES)
    parser.add_argument("directory", nargs="?", type=Path, default=PLOTS)
    arguments = parser.parse_args(argv)
    for path in render(Figures.load(arguments.figures), arguments.directory):
        print(path)


if __name__ == "__main__":
    main()
