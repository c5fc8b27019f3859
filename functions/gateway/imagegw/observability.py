"""Metrics and traces: CloudWatch EMF lines, X-Ray through Powertools Tracer.

Metrics are EMF lines on stdout (CloudWatch turns them into metrics; nothing is called over the
network), written here in the shape Powertools' ``single_metric`` writes them: importing
Powertools for that cost about 9 ms of a generation's cold start.

Each is emitted on its own with its own dimensions, because one request's provider and
model differ from the next one's in the same warm process:

    ImagesGenerated   Count         provider, model
    UpstreamLatency   Milliseconds  provider, model
    GenerationErrors  Count         provider, model, error_code   (every refused or failed call)
    UpstreamFailures  Count         provider    (a 5xx answer because of the upstream: it failed,
                                                 timed out, was unreachable or refused our keys)
    StorageFallbacks  Count         (none)      (url asked, the store failed, images went inline)
    GenerationCost    None (USD)    provider, model, and again by key (what delivered images cost)
    UnpricedImages    Count         provider, model   (images of a model without a known price)

template.yaml's alarm and dashboard read these names and dimension sets: change them together.

Tracing wraps the upstream call in an X-Ray subsegment annotated with provider and model, and
records no request or response body. Powertools and the X-Ray SDK are imported only when
tracing is switched on: the SDK costs about 0.3 s of cold start.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from imagegw.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = "imagegw"
# The CloudWatch units the metrics use (EMF rejects a line with any other).
UNITS = frozenset({"Count", "Milliseconds", "None"})
_tracer: Tracer | None = None


def in_lambda() -> bool:
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


def tracer() -> Tracer:
    """The process's Powertools Tracer, patching only httpx (upstreams) and botocore (AWS)."""
    global _tracer
    if _tracer is None:
        from aws_lambda_powertools import Tracer

        _tracer = Tracer(service=SERVICE, auto_patch=True, patch_modules=["httpx", "botocore"])
    return _tracer


class Telemetry:
    def __init__(self, settings: Settings) -> None:
        self._metrics = settings.metrics if settings.metrics is not None else in_lambda()
        self._namespace = settings.metrics_namespace
        self._tracing = settings.tracing

    @property
    def tracing(self) -> bool:
        return self._tracing

    def images_generated(self, *, provider: str, model: str, count: int) -> None:
        self._emit("ImagesGenerated", "Count", count, provider=provider, model=model)

    def upstream_latency(self, *, provider: str, model: str, milliseconds: float) -> None:
        self._emit("UpstreamLatency", "Milliseconds", milliseconds, provider=provider, model=model)

    def cost(self, *, provider: str, model: str, key: str, usd: float | None, images: int) -> None:
        """What a generation cost, summable by model and by key (the key's name, never the key).

        ``usd`` None: the model has no known price; its images are counted instead.
        """
        if usd is None:
            self._emit("UnpricedImages", "Count", images, provider=provider, model=model)
            return
        self._emit("GenerationCost", "None", usd, provider=provider, model=model)
        self._emit("GenerationCost", "None", usd, key=key)

    def error(self, *, code: str | None, provider: str | None, model: str | None) -> None:
        self._emit(
            "GenerationErrors",
            "Count",
            1,
            provider=provider or "none",
            model=model or "none",
            error_code=code or "unknown",
        )

    def upstream_failure(self, *, provider: str) -> None:
        self._emit("UpstreamFailures", "Count", 1, provider=provider)

    def storage_fallback(self) -> None:
        # No dimension: the store is the same whatever the provider; one series to read.
        self._emit("StorageFallbacks", "Count", 1)

    def _emit(self, name: str, unit: str, value: float, **dimensions: str) -> None:
        if not self._metrics:
            return
        print(emf_line(name, unit, value, self._namespace, {"service": SERVICE, **dimensions}))

    @contextlib.asynccontextmanager
    async def span(self, name: str, **annotations: str) -> AsyncIterator[None]:
        """An X-Ray subsegment around a block, when tracing is on; nothing otherwise."""
        if not self._tracing:
            yield
            return
        active = tracer()
        if active.disabled:
            yield
            return
        subsegment: Any
        async with active.provider.in_subsegment_async(name) as subsegment:
            for key, value in annotations.items():
                subsegment.put_annotation(key, value)
            yield


def emf_line(name: str, unit: str, value: float, namespace: str, dimensions: dict[str, str]) -> str:
    """One metric as a CloudWatch embedded metric format line, with its own dimension set."""
    if unit not in UNITS:
        raise ValueError(f"{unit!r} is not a unit these metrics use")
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit}],
                }
            ],
        },
        **dimensions,
        name: [float(value)],
    }
    return json.dumps(document, separators=(",", ":"))
