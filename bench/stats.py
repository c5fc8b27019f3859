"""Percentiles and the small formatting helpers every benchmark shares."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) with linear interpolation between the nearest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = math.floor(position)
    upper = math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def p50_p90_p99(values: Sequence[float]) -> tuple[float, float, float]:
    return percentile(values, 0.5), percentile(values, 0.9), percentile(values, 0.99)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def verdict(value: float, target: float) -> str:
    """'met (x% of target)' or 'MISSED (x% of target)': lower is better for every figure."""
    share = f"{value / target * 100:.0f}% of target"
    return f"met ({share})" if value <= target else f"MISSED ({share})"
