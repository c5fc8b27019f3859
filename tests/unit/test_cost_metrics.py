"""The cost metrics as CloudWatch reads them: EMF lines on stdout."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imagegw.observability import Telemetry
from imagegw.settings import Settings


def emitted(captured: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


def test_a_cost_is_counted_by_model_and_by_key(capsys: pytest.CaptureFixture[str]) -> None:
    telemetry = Telemetry(Settings(metrics=True))
    telemetry.cost(provider="openai", model="openai/gpt-image-2", key="team-a", usd=0.211, images=1)
    by_model, by_key = emitted(capsys.readouterr().out)
    assert by_model["GenerationCost"] == [0.211]
    assert (by_model["provider"], by_model["model"]) == ("openai", "openai/gpt-image-2")
    assert by_model["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["service", "provider", "model"]
    ]
    assert by_key["GenerationCost"] == [0.211]
    assert by_key["key"] == "team-a"
    assert by_key["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "None"


def test_images_without_a_known_price_are_counted_instead(
    capsys: pytest.CaptureFixture[str],
) -> None:
    telemetry = Telemetry(Settings(metrics=True))
    telemetry.cost(
        provider="openai", model="openai/gpt-image-2.6-flare", key="k", usd=None, images=3
    )
    (line,) = emitted(capsys.readouterr().out)
    assert line["UnpricedImages"] == [3.0]
    assert "key" not in line
    assert "GenerationCost" not in line
