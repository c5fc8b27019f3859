"""bench/plots.py draws each chart of bench/RESULTS.md from a record of figures (no measuring)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from bench import plots
from bench.figures import ColdStartCase, Figures, LatencyCase, MemoryPoint, ThroughputPoint


def sample_figures() -> Figures:
    def times(center: float, count: int) -> list[float]:
        # A spread without randomness: the same figures every run.
        return [center + (index * 37 % 11) / 2.5 - 1.0 for index in range(count)]

    return Figures(
        when="2026-12-07 00:00 UTC",
        latency=[
            LatencyCase("n=1 b64_json", times(6.0, 40), times(12.0, 40)),
            LatencyCase("n=4 url (local)", times(30.0, 12), times(45.0, 12)),
        ],
        throughput=[
            ThroughputPoint("32x32 PNG", level, level / 0.21, level / 0.24)
            for level in (1, 4, 16, 64)
        ],
        memory=[
            MemoryPoint(
                n, payload_mib=1.9 * n, growth_mib=4.5 * n, peak_mib=61 + 5 * n, idle_mib=60
            )
            for n in (1, 2, 4, 10)
        ],
        coldstart=[
            ColdStartCase("rest-v1-models", times(400.0, 8), times(350.0, 8)),
            ColdStartCase("rest-v1-generate", times(520.0, 8), times(355.0, 8)),
        ],
    )


def test_every_chart_is_drawn_as_a_png(tmp_path: Path) -> None:
    paths = plots.render(sample_figures(), tmp_path / "plots")
    assert [path.name for path in paths] == [name for name, _ in plots.CHARTS]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
            width, height = image.size
            assert width >= 700
            assert height >= 400
            # Something was drawn: more than a blank canvas of one colour.
            assert len(image.convert("RGB").getcolors(maxcolors=1_000_000) or []) > 50


def test_the_record_round_trips_through_json_and_the_command_draws_from_it(
    tmp_path: Path,
) -> None:
    figures = sample_figures()
    record = tmp_path / "figures.json"
    figures.dump(record)
    assert Figures.load(record) == figures
    plots.main([str(record), str(tmp_path / "out")])
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(
        name for name, _ in plots.CHARTS
    )


def test_results_md_shows_every_chart() -> None:
    results = (Path(plots.__file__).parent / "RESULTS.md").read_text()
    for line in plots.markdown():
        assert line in results
