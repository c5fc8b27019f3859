"""BFL's failures as the gateway's errors, by HTTP status and task status.

The submit call is the billable one. A 429 (too many active tasks) and a refusal (4xx) prove no
task was created; a 5xx, a cut connection or a timeout after the body was sent may hide a task
that runs and is billed, so those are never repeated (``should_retry`` false, which is also what
``x-should-retry`` tells the client). Polls and downloads are GETs of a task that exists: the
gateway repeats those itself when they fail transiently.

BFL's error bodies are FastAPI's ``{"detail": "..." | [{"loc", "msg"}...]}`` or
``{"message": ...}``; a 429 may carry ``retry_after`` in the body and ``Retry-After`` as a header.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
)
from imagegw.providers.base import error_document

# Used when a 429 says nothing about when to come back.
DEFAULT_RETRY_AFTER_SECONDS = 5
# The OpenAI SDK gives up at once on a Retry-After above 120 s; cap so it still retries.
MAX_RETRY_AFTER_SECONDS = 120
_DETAIL_CHARS = 300

# Task statuses (GET polling_url).
READY = "Ready"
PENDING = "Pending"
REQUEST_MODERATED = "Request Moderated"
CONTENT_MODERATED = "Content Moderated"
TASK_ERROR = "Error"
TASK_NOT_FOUND = "Task not found"


def moderated(status: str) -> ContentPolicyViolation:
    """BFL's moderation stopped the task (not charged, per BFL): counted as filtered."""
    stage = "your prompt" if status == REQUEST_MODERATED else "the generated image"
    return ContentPolicyViolation(
        f"Your request was rejected by Black Forest Labs' moderation: it flagged {stage} "
        f"({status}).",
        code="content_policy_violation",
    )


def submit_error(
    status: int, content: bytes | bytearray, headers: Mapping[str, str]
) -> GatewayError:
    """A refused or failed ``POST /v1/<model>``."""
    if status in (400, 413, 422):
        return InvalidRequest(f"Black Forest Labs rejected the request: {_detail(content)}")
    if status == 402:
        return ServiceUnavailable(
            "The gateway's Black Forest Labs account is out of credits.",
            code="upstream_quota_exhausted",
        )
    if status in (401, 403):
        return auth_failed()
    if status == 404:
        return ModelUnavailable(
            "Black Forest Labs does not serve this model (any more).", param="model"
        )
    if status == 429:
        return rate_limited(content, headers)
    return UpstreamError(
        f"Black Forest Labs failed (HTTP {status}) after receiving the request. The task may "
        "still have been created and billed, so the gateway does not submit it again."
    )


def auth_failed() -> UpstreamAuthFailed:
    return UpstreamAuthFailed(
        "Black Forest Labs rejected the gateway's own API key. This is a problem with the "
        "gateway's configuration, not with your request or key."
    )


def rate_limited(content: bytes | bytearray, headers: Mapping[str, str]) -> RateLimited:
    """BFL's 429: its limit on active tasks (24 per account for most models)."""
    seconds = retry_after(content, headers)
    told = (
        DEFAULT_RETRY_AFTER_SECONDS
        if seconds is None
        else min(MAX_RETRY_AFTER_SECONDS, max(1, math.ceil(seconds)))
    )
    return RateLimited(
        "Black Forest Labs is at its limit of active tasks for the gateway's account. Retry "
        f"after {told} seconds.",
        headers={"retry-after": str(told)},
        retry_after=seconds,
    )


def retry_after(content: bytes | bytearray, headers: Mapping[str, str]) -> float | None:
    """The delay BFL asked for: the ``Retry-After`` header, else the body's ``retry_after``."""
    value: object = headers.get("retry-after")
    if value is None:
        value = _document(content).get("retry_after")
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def task_failed(status: str) -> UpstreamError:
    if status == TASK_NOT_FOUND:
        return UpstreamError(
            "Black Forest Labs no longer knows the task it created for this request (Task not "
            "found). The gateway does not submit it again."
        )
    return UpstreamError(
        "Black Forest Labs failed to generate the image (task status Error). The gateway does "
        "not submit it again on its own."
    )


def _detail(content: bytes | bytearray) -> str:
    document = _document(content)
    detail = document.get("detail", document.get("message"))
    if isinstance(detail, list):
        parts = []
        for item in detail[:3]:
            if isinstance(item, Mapping):
                where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
                parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        detail = "; ".join(parts)
    text = " ".join(str(detail).split()) if isinstance(detail, str | list) and detail else ""
    return text[:_DETAIL_CHARS] or "no reason given."


def _document(content: bytes | bytearray) -> dict[str, Any]:
    # Total: not JSON is {}; nested too deeply is a 502 (providers/base.py).
    document = error_document(content, upstream="Black Forest Labs")
    return document if isinstance(document, dict) else {}
