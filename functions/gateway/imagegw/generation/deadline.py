"""How long an upstream call may take: the configured timeout, or less when Lambda or API
Gateway would cut the request off first.

A generation that outlives the invocation is paid for and lost, and the caller sees a bare
gateway error. So the gateway works out when its answer stops being useful (the function's
remaining time, and API Gateway's integration timeout for requests that came through it), keeps
a margin for storing the images and answering, and gives the upstream only what is left. When
that runs out the caller gets a clean 504 that says what to do instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from imagegw.errors import UpstreamTimeout

Limit = Literal["configured", "function", "api_gateway", "worker"]

# When API Gateway's receive time cannot be trusted (missing, or a clock that disagrees), this
# much of its timeout is assumed spent before the function started (cold start, integration).
ASSUMED_GATEWAY_OVERHEAD_SECONDS = 1.0
# Below this an upstream call cannot finish; failing at once costs nothing upstream.
MIN_UPSTREAM_SECONDS = 1.0

ADVICE: dict[Limit, str] = {
    "configured": "",
    "api_gateway": (
        " API Gateway ends a request after {gateway:g} seconds. For long generations call the "
        "gateway's Function URL (synchronous calls up to the function timeout), or submit an "
        "async job with the header 'Prefer: respond-async' and poll GET /v1/images/jobs/{{id}}."
    ),
    "function": (
        " The gateway function's time limit was reached. For long generations submit an async "
        "job with the header 'Prefer: respond-async' and poll GET /v1/images/jobs/{{id}}."
    ),
    "worker": (
        " The job worker's time limit was reached; the operator can raise the worker "
        "function's timeout (at most 900 seconds)."
    ),
}


@dataclass(frozen=True)
class Budget:
    seconds: float
    limit: Limit
    gateway_timeout: float = 29.0

    def advice(self) -> str:
        return ADVICE[self.limit].format(gateway=self.gateway_timeout)

    def exhausted(self) -> UpstreamTimeout:
        return UpstreamTimeout(
            "Not enough time was left to call the upstream provider, so it was not called."
            + self.advice()
        )


@dataclass(frozen=True)
class Deadline:
    """The monotonic time by which the answer must be on its way, and what sets it."""

    at: float
    limit: Limit
    gateway_timeout: float = 29.0
    clock: Callable[[], float] = time.monotonic

    def budget(self, configured: float, margin: float) -> Budget:
        left = self.at - margin - self.clock()
        if configured <= left:
            return Budget(configured, "configured", self.gateway_timeout)
        return Budget(max(0.0, left), self.limit, self.gateway_timeout)


def no_deadline(configured: float) -> Budget:
    return Budget(configured, "configured")


def is_function_url(event: Mapping[str, Any]) -> bool:
    context = event.get("requestContext")
    domain = context.get("domainName") if isinstance(context, Mapping) else None
    return isinstance(domain, str) and ".lambda-url." in domain


def _gateway_received_at(event: Mapping[str, Any]) -> float | None:
    """Wall-clock seconds when API Gateway received the request (v1 and v2 payloads)."""
    context = event.get("requestContext")
    if not isinstance(context, Mapping):
        return None
    epoch_ms = context.get("requestTimeEpoch", context.get("timeEpoch"))
    if isinstance(epoch_ms, bool) or not isinstance(epoch_ms, int | float):
        return None
    return float(epoch_ms) / 1000


def lambda_deadline(
    context: Any,
    event: Any,
    *,
    gateway_timeout: float,
    worker: bool = False,
    wall: Callable[[], float] = time.time,
    clock: Callable[[], float] = time.monotonic,
) -> Deadline | None:
    """The deadline of this invocation, or None outside Lambda (no context with a clock)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    now = clock()
    deadline = Deadline(
        now + float(remaining()) / 1000,
        "worker" if worker else "function",
        gateway_timeout,
        clock,
    )
    is_http = isinstance(event, Mapping) and "requestContext" in event
    if not is_http or is_function_url(event):
        return deadline
    received = _gateway_received_at(event)
    elapsed = wall() - received if received is not None else None
    if elapsed is None or not 0 <= elapsed <= gateway_timeout:
        elapsed = ASSUMED_GATEWAY_OVERHEAD_SECONDS
    gateway_at = now + gateway_timeout - elapsed
    if gateway_at < deadline.at:
        return Deadline(gateway_at, "api_gateway", gateway_timeout, clock)
    return deadline
