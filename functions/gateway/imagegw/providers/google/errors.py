"""Google's error responses -> the gateway's errors, by HTTP status and structured fields.

Google's envelope: ``{"error": {"code", "message", "status", "details": [...]}}``. ``status`` is the
canonical code (INVALID_ARGUMENT, RESOURCE_EXHAUSTED ...); ``details`` may hold an ``ErrorInfo``
(``reason``) and a ``RetryInfo`` (``retryDelay``). Google's text reaches the caller only for a
request the caller can fix (INVALID_ARGUMENT); failures of the gateway's own credentials, project
or quota are told without it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    RateLimited,
    UpstreamAuthFailed,
    UpstreamError,
    relayed,
)
from imagegw.providers.base import error_document

# Used when a 429 says nothing about when to come back.
DEFAULT_RETRY_AFTER_SECONDS = 5
# The OpenAI SDK gives up at once on a Retry-After above 120 s; cap so it still retries.
MAX_RETRY_AFTER_SECONDS = 120

# Imagen refuses a prompt its safety filter blocks with a bare INVALID_ARGUMENT whose only
# machine-readable mark is a numeric Responsible-AI support code ("Support codes: 61493863",
# older models "Error Code: 58061214"); there is no ErrorInfo. The code is the signal, not prose.
_RAI_SUPPORT_CODE = re.compile(r"(?:Support codes?|Error Code):\s*\d{6,}")
# ErrorInfo reasons that mean the request was refused for its content.
_SAFETY_REASONS = ("SAFETY", "UNSAFE", "PROHIBITED", "BLOCKED_CONTENT")
_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")

CONTENT_POLICY_MESSAGE = "Your request was rejected by Google's safety filters."
_AUTH_MESSAGE = (
    "Google rejected the gateway's own credentials or permissions. This is a problem with the "
    "gateway's configuration, not with your request or key."
)


def translate_error(status: int, content: bytes, headers: Mapping[str, str]) -> GatewayError:
    error = _error_object(content)
    # Quoted in messages: short, scrubbed (relayed), whatever Google's front end sent.
    canonical = relayed(error.get("status"), limit=60)
    reasons = _reasons(error)
    if status in (401, 403) or any(reason.startswith("API_KEY_") for reason in reasons):
        # The Gemini API answers a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
        return UpstreamAuthFailed(_AUTH_MESSAGE)
    if status == 400:
        if _is_safety_block(error, reasons):
            return ContentPolicyViolation(CONTENT_POLICY_MESSAGE, code="content_policy_violation")
        if canonical == "INVALID_ARGUMENT":
            # Google's words, scrubbed: a front end may echo the request's key or token.
            message = relayed(error.get("message")) or "The request was invalid."
            return InvalidRequest(
                f"Google rejected the request: {message}", code="invalid_argument"
            )
        # FAILED_PRECONDITION and the like: billing, region or project setup of the gateway.
        return UpstreamError(
            f"Google refused the call because of the gateway's project setup ({canonical or 400})."
        )
    if status == 404:
        return ModelUnavailable(
            "Google does not serve this model (any more) to the gateway's project.", param="model"
        )
    if status == 429:
        retry_after = retry_after_seconds(headers, error)
        return RateLimited(
            f"Google is rate-limiting the gateway's requests. Retry after {retry_after} seconds.",
            headers={"retry-after": str(retry_after)},
        )
    return UpstreamError(f"Google failed (HTTP {status}{f' {canonical}' if canonical else ''}).")


def retry_after_seconds(headers: Mapping[str, str], error: Mapping[str, Any]) -> int:
    seconds = _number(headers.get("retry-after"))
    if seconds is None:
        for detail in _details(error):
            if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
                match = _RETRY_DELAY.match(_str(detail.get("retryDelay")) or "")
                seconds = float(match.group(1)) if match else None
    if seconds is None or seconds <= 0:
        return DEFAULT_RETRY_AFTER_SECONDS
    return min(MAX_RETRY_AFTER_SECONDS, max(1, math.ceil(seconds)))


def _is_safety_block(error: Mapping[str, Any], reasons: list[str]) -> bool:
    if any(word in reason for reason in reasons for word in _SAFETY_REASONS):
        return True
    message = _str(error.get("message")) or ""
    return _str(error.get("status")) == "INVALID_ARGUMENT" and bool(
        _RAI_SUPPORT_CODE.search(message)
    )


def _reasons(error: Mapping[str, Any]) -> list[str]:
    return [
        str(detail.get("reason"))
        for detail in _details(error)
        if str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo") and detail.get("reason")
    ]


def _details(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [detail for detail in details if isinstance(detail, Mapping)]


def _error_object(content: bytes) -> dict[str, Any]:
    document = error_document(content, upstream="Google")
    # Some Google front ends wrap the envelope in a one-element list.
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else {}


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
