"""The gateway's EMF lines are the lines Powertools' ``single_metric`` writes (CloudWatch reads
them, the stack's alarms and dashboard name them); only the timestamp may differ."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from imagegw.observability import emf_line


@pytest.mark.parametrize(
    ("name", "unit", "value", "dimensions"),
    [
        ("ImagesGenerated", "Count", 4, {"service": "imagegw", "provider": "p", "model": "p/m"}),
        ("UpstreamLatency", "Milliseconds", 812.5, {"service": "imagegw", "provider": "p"}),
        ("GenerationCost", "None", 0.04, {"service": "imagegw", "key": "team-a"}),
        ("StorageFallbacks", "Count", 1, {"service": "imagegw"}),
    ],
)
def test_a_metric_line_is_what_powertools_writes(
    name: str, unit: str, value: float, dimensions: dict[str, str]
) -> None:
    written = io.StringIO()
    with (
        contextlib.redirect_stdout(written),
        single_metric(
            name=name,
            unit=MetricUnit(unit),
            value=value,
            namespace="imagegw/prod",
            default_dimensions=dimensions,
        ),
    ):
        pass
    theirs = json.loads(written.getvalue())
    ours = json.loads(emf_line(name, unit, value, "imagegw/prod", dimensions))
    assert abs(ours["_aws"].pop("Timestamp") - theirs["_aws"].pop("Timestamp")) < 60_000
    assert ours == theirs


def test_a_unit_cloudwatch_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="unit"):
        emf_line("ImagesGenerated", "Images", 1, "imagegw", {"service": "imagegw"})
