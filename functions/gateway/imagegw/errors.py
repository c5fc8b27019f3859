"""The gateway's errors: one tree, rendered once.

Every failure a caller can see is a ``GatewayError``. Providers, the catalog, validation and
delivery raise these; only ``render`` turns one into an HTTP body, always OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}``.

    GatewayError                         500 server_error
    ├── InvalidRequest                   400 invalid_request_error
    │   ├── UnknownParameter             400 code=unknown_parameter
    │   ├── MissingParameter             400 code=missing_required_parameter
    │   ├── InvalidType                  400 code=invalid_type
    │   ├── InvalidValue                 400 code=invalid_value
    │   ├── PromptTooLong                400 code=string_above_max_length
    │   ├── MalformedBody                400 code=invalid_json | invalid_multipart
    │   ├── InvalidImage                 400 code=invalid_image | invalid_image_format |
    │   │                                    image_too_large (pixels) | invalid_mask
    │   ├── ForbiddenImageUrl            400 code=image_url_not_allowed (SSRF guard)
    │   ├── UnsupportedParameter         400 code=unsupported_parameter
    │   │   └── StreamingNeedsOneImage   400 type=image_generation_user_error (stream with n > 1)
    │   ├── MalformedEvent               400 code=malformed_event (SQS, EventBridge, direct invoke)
    │   ├── UnknownClient                400 code=unknown_client (an event names no known key)
    │   ├── UnsupportedEvent             400 code=unsupported_event
    │   ├── JobConflict                  409 code=job_id_conflict
    │   └── ContentPolicyViolation       400 code=content_policy_violation
    ├── AuthenticationFailed             401 (code=missing_api_key | invalid_api_key)
    ├── BudgetExceeded                   402 type=billing_error code=insufficient_balance
    ├── PermissionDenied                 403 code=insufficient_scope | model_not_allowed
    │   ├── LinkRefused                  403 code=invalid_link (a signed link that fails its check)
    │   ├── ModelNotPriced               403 code=model_not_priced (a key with a spend budget)
    │   └── UploadRefused                403 code=upload_refused (an upload form that fails)
    ├── NotFound                         404
    │   ├── ModelNotFound                404 code=model_not_found
    │   ├── ModelRetired                 404 code=model_retired
    │   ├── ModelUnavailable             404 code=model_unavailable (gone upstream)
    │   └── JobExpired                   410 code=job_expired (in a job view: past retention)
    ├── EndpointRetired                  410 code=endpoint_retired
    ├── PayloadTooLarge                  413 code=payload_too_large
    ├── UnsupportedMediaType             415 code=unsupported_media_type
    ├── MethodNotAllowed                 405 code=method_not_allowed
    ├── IdempotencyInProgress            409 code=idempotency_in_progress (+ Retry-After)
    ├── IdempotencyKeyReused             422 code=idempotency_key_reused
    ├── RateLimited                      429 code=rate_limit_exceeded (+ Retry-After)
    ├── QuotaExceeded                    429 code=insufficient_quota
    ├── UpstreamError                    502 code=upstream_error
    │   ├── UpstreamUnreachable          502 code=upstream_unreachable  (never sent: safe to retry)
    │   ├── UpstreamAuthFailed           502 code=upstream_auth_failed  (our credentials, not yours)
    │   ├── UpstreamBadResponse          502 code=upstream_bad_response
    │   └── StreamInterrupted            502 code=stream_interrupted (caller left mid-stream)
    ├── ServiceUnavailable               503
    │   ├── ProviderNotConfigured        503 code=provider_not_configured
    │   ├── StorageUnavailable           503 code=storage_unavailable
    │   ├── StateUnavailable             503 code=state_unavailable (before any upstream call)
    │   ├── SecretUnavailable            503 code=secret_unavailable (before any upstream call)
    │   ├── JobQueueUnavailable          503 code=job_queue_unavailable
    │   └── JobStoreUnavailable          503 code=job_store_unavailable
    ├── UpstreamTimeout                  504 code=upstream_timeout
    └── ReplayedError                    as kept: an earlier answer to the same Idempotency-Key

Every class is defined here, so this tree is the whole list (a unit test checks it).

``should_retry`` is what the ``x-should-retry`` header tells OpenAI clients. The policy: a retry is
advised only when the upstream cannot have billed the call (the request never left, or the upstream
refused it with a rate limit). An ambiguous timeout or an upstream 5xx may have produced a billed
image, so the client is told not to repeat it on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from imagegw.redaction import scrub


class GatewayError(Exception):
    """Base of every caller-visible failure. Subclasses set the class attributes."""

    # Class-level defaults; only ReplayedError sets them per instance (from stored data).
    status: int = 500
    error_type: str = "server_error"
    default_code: str | None = None
    should_retry: bool = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # Every message is scrubbed of secrets and credential shapes (redaction.py): it reaches
        # the caller and may reach logs, and some quote upstream or caller text.
        message = scrub(message)
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response_headers(self) -> dict[str, str]:
        headers = {"x-should-retry": "true" if self.should_retry else "false"}
        headers.update(self.headers)
        return headers


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class UnknownParameter(InvalidRequest):
    default_code = "unknown_parameter"


class MissingParameter(InvalidRequest):
    default_code = "missing_required_parameter"


class InvalidType(InvalidRequest):
    default_code = "invalid_type"


class InvalidValue(InvalidRequest):
    default_code = "invalid_value"


class PromptTooLong(InvalidRequest):
    default_code = "string_above_max_length"


class MalformedBody(InvalidRequest):
    default_code = "invalid_json"


class InvalidImage(InvalidRequest):
    """An input image of an edit that is not an image the gateway accepts (type, pixels, mask)."""

    default_code = "invalid_image"


class ForbiddenImageUrl(InvalidRequest):
    """An ``image_url`` the gateway will not fetch: not HTTPS, or not on the public internet."""

    default_code = "image_url_not_allowed"


class UnsupportedParameter(InvalidRequest):
    default_code = "unsupported_parameter"


class StreamingNeedsOneImage(UnsupportedParameter):
    """OpenAI's own answer to ``stream`` with ``n`` > 1, to the letter (type and param too)."""

    error_type = "image_generation_user_error"


class MalformedEvent(InvalidRequest):
    default_code = "malformed_event"


class UnknownClient(MalformedEvent):
    default_code = "unknown_client"


class UnsupportedEvent(InvalidRequest):
    default_code = "unsupported_event"


class JobConflict(InvalidRequest):
    status = 409
    default_code = "job_id_conflict"


class ContentPolicyViolation(InvalidRequest):
    default_code = "content_policy_violation"


class AuthenticationFailed(GatewayError):
    status = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    error_type = "permission_error"
    default_code = "insufficient_scope"


class LinkRefused(PermissionDenied):
    default_code = "invalid_link"


class ModelNotPriced(PermissionDenied):
    """A key with a spend budget asked for a model whose price the gateway does not know."""

    default_code = "model_not_priced"


class UploadRefused(PermissionDenied):
    """An upload form (POST /v1/images/uploads/{id}) with a bad signature, type or lifetime."""

    default_code = "upload_refused"


class NotFound(GatewayError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class JobExpired(NotFound):
    status = 410
    default_code = "job_expired"


class ModelNotFound(NotFound):
    default_code = "model_not_found"


class ModelRetired(NotFound):
    default_code = "model_retired"


class ModelUnavailable(NotFound):
    default_code = "model_unavailable"


class EndpointRetired(GatewayError):
    """An OpenAI endpoint that no longer exists upstream (``/v1/images/variations``)."""

    status = 410
    error_type = "invalid_request_error"
    default_code = "endpoint_retired"


class PayloadTooLarge(GatewayError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    error_type = "invalid_request_error"
    default_code = "unsupported_media_type"


class MethodNotAllowed(GatewayError):
    status = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class IdempotencyInProgress(GatewayError):
    """A request with the same Idempotency-Key is still running: ask again later."""

    status = 409
    error_type = "invalid_request_error"
    default_code = "idempotency_in_progress"
    should_retry = True


class IdempotencyKeyReused(GatewayError):
    """The Idempotency-Key was used before for a different request."""

    status = 422
    error_type = "invalid_request_error"
    default_code = "idempotency_key_reused"


class RateLimited(GatewayError):
    """Refused before any work was done (by the upstream, or by the key's own rate): not billed.

    ``retry_after`` is the delay the upstream asked for, in seconds, when it named one; the
    gateway's own retries honour it (the ``retry-after`` header is what the caller is told).
    """

    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    should_retry = True

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self.retry_after = retry_after


class BudgetExceeded(GatewayError):
    """The key's spend budget (USD per day or month) has no room for the request's maximum cost.

    Seed 001's shape: 402 ``billing_error``. Not worth retrying before the budget renews, which
    the message and ``x-imagegw-budget-renews-at`` say.
    """

    status = 402
    error_type = "billing_error"
    default_code = "insufficient_balance"


class QuotaExceeded(GatewayError):
    """The key used up its quota of images for the period: retrying soon will not help."""

    status = 429
    error_type = "insufficient_quota"
    default_code = "insufficient_quota"


class UpstreamError(GatewayError):
    status = 502
    error_type = "upstream_error"
    default_code = "upstream_error"


class UpstreamUnreachable(UpstreamError):
    """The connection failed before the request was sent, so nothing can have been billed."""

    default_code = "upstream_unreachable"
    should_retry = True


class UpstreamAuthFailed(UpstreamError):
    default_code = "upstream_auth_failed"


class UpstreamBadResponse(UpstreamError):
    default_code = "upstream_bad_response"


class StreamInterrupted(UpstreamError):
    """The caller went away mid-stream: the upstream was generating and may have billed."""

    default_code = "stream_interrupted"


class ServiceUnavailable(GatewayError):
    status = 503
    error_type = "service_unavailable"
    default_code = "service_unavailable"


class ProviderNotConfigured(ServiceUnavailable):
    default_code = "provider_not_configured"


class StorageUnavailable(ServiceUnavailable):
    default_code = "storage_unavailable"


class StateUnavailable(ServiceUnavailable):
    """Idempotency records or key counters could not be read, before any upstream call."""

    default_code = "state_unavailable"
    should_retry = True


class SecretUnavailable(ServiceUnavailable):
    default_code = "secret_unavailable"
    # Secrets are read before any upstream call (keys at auth, credentials before the
    # provider), so nothing was generated or billed: a retry is safe.
    should_retry = True


class JobQueueUnavailable(ServiceUnavailable):
    default_code = "job_queue_unavailable"


class JobStoreUnavailable(ServiceUnavailable):
    default_code = "job_store_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    error_type = "timeout_error"
    default_code = "upstream_timeout"


# Longest upstream text passed on in a message: enough for any real explanation.
RELAYED_CHARS = 1000


def relayed(text: object, *, limit: int = RELAYED_CHARS) -> str | None:
    """Upstream text fit to pass on: a non-empty string, cut to ``limit``, scrubbed of secrets.

    What every provider uses for an upstream's error message (or any other upstream text it
    quotes to the caller); None when there is nothing usable. Scrubbed before it is cut, so a
    secret at the cut is not half left.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    cleaned = scrub(text[: limit * 4])
    if len(cleaned) > limit:
        cleaned = cleaned[:limit] + "…"
    return cleaned


class ReplayedError(GatewayError):
    """An error kept for an Idempotency-Key, answered again exactly as it was first sent.

    Rebuilt from stored data (status, the envelope's type and code, the retry advice), never
    from a Python class path, so renaming or moving a class cannot change what a replay says.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str,
        should_retry: bool,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self.status = status
        self.error_type = error_type
        self.should_retry = should_retry


def render(error: GatewayError) -> bytes:
    """The one place an error becomes a response body. Total: any text renders.

    A message or param may quote text that is not valid Unicode (a lone surrogate a caller or
    an upstream sent); JSON's ``\\u`` escapes carry it then, instead of a failed encode.
    """
    body = error.body()
    try:
        return json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body).encode("ascii")


def internal_error() -> GatewayError:
    """What a caller sees for a bug: no stack trace, no internals."""
    return GatewayError("The gateway failed to process the request. The failure was logged.")
