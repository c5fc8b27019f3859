"""Amazon Bedrock ``InvokeModel`` failures -> the gateway's errors, by the structured error code.

Bedrock's exceptions (botocore's service model; shared/reference/providers.md §2):

    ValidationException 400, ServiceQuotaExceededException 400, AccessDeniedException 403,
    ResourceNotFoundException 404, ModelTimeoutException 408, ModelErrorException 424,
    ThrottlingException 429, ModelNotReadyException 429, InternalServerException 500,
    ServiceUnavailableException 503

Mapped by the retry table (retry.py): only a refusal that proves nothing ran (throttling, a model
not ready yet, a quota) may be repeated; a timeout or a 5xx after the request was sent may hide a
billed image and never is. Bedrock's text reaches the caller only for a request the caller can
fix (ValidationException); the gateway's own access and setup problems are told without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    ProviderNotConfigured,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
    relayed,
)
from imagegw.providers.base import error_document

# Used when a throttled answer says nothing about when to come back (Bedrock usually does not).
DEFAULT_RETRY_AFTER_SECONDS = 5
MAX_RETRY_AFTER_SECONDS = 120
# Older Stability models refused filtered prompts with a ValidationException naming them.
_FILTERED_WORDS = ("filtered words", "invalid_prompts", "content filter")
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
CONTENT_POLICY_MESSAGE = "Your request was rejected by Amazon Bedrock's content filters."
# An error code is an identifier ("ValidationException"); anything else is not one.
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,99}")


def error_of_answer(
    status: int,
    content: bytes | bytearray,
    headers: Mapping[str, str],
    *,
    model: str,
    region: str,
) -> GatewayError:
    """An error answer (status, body, headers) of ``InvokeModel`` as the gateway's error.

    Read as botocore reads AWS's REST-JSON errors: the code from ``x-amzn-ErrorType`` (before
    its ``:``), else the body's ``__type`` (after its ``#``) or ``code``; the message from the
    body's ``message`` or ``Message``. A body that is not JSON (a proxy's page) leaves only the
    status to judge by; one nested beyond the parser's limit is a 502 ``upstream_bad_response``.
    """
    document = error_document(content, upstream="Amazon Bedrock")
    fields = document if isinstance(document, dict) else {}
    code = _code(headers.get("x-amzn-errortype", "").split(":", 1)[0])
    if code is None:
        kind = fields.get("__type") or fields.get("code") or fields.get("Code")
        code = _code(kind.rsplit("#", 1)[-1] if isinstance(kind, str) else "")
    message = fields.get("message", fields.get("Message"))
    return translate_error(
        code or "",
        status,
        message if isinstance(message, str) else "",
        headers,
        model=model,
        region=region,
    )


def _code(text: str) -> str | None:
    text = text.strip()
    return text if _CODE.fullmatch(text) else None


def translate_error(
    code: str,
    status: int,
    message: str,
    headers: Mapping[str, str],
    *,
    model: str,
    region: str,
) -> GatewayError:
    if code == "ThrottlingException" or code == "ServiceQuotaExceededException":
        seconds = _retry_after(headers)
        return RateLimited(
            f"Amazon Bedrock is throttling the gateway's requests for `{model}`. Retry after "
            f"{seconds} seconds.",
            headers={"retry-after": str(seconds)},
            retry_after=float(seconds) if "retry-after" in headers else None,
        )
    if code == "ModelNotReadyException":
        # Refused before running (AWS's own SDKs retry it): safe to repeat.
        seconds = _retry_after(headers)
        return RateLimited(
            f"Amazon Bedrock is not ready to serve `{model}` yet. Retry after {seconds} seconds.",
            code="model_not_ready",
            headers={"retry-after": str(seconds)},
        )
    if code == "ValidationException":
        if any(marker in message.lower() for marker in _FILTERED_WORDS):
            return ContentPolicyViolation(CONTENT_POLICY_MESSAGE, code="content_policy_violation")
        return InvalidRequest(
            f"Amazon Bedrock rejected the request: {relayed(message) or 'invalid request'}",
            code="invalid_request",
        )
    if code == "AccessDeniedException":
        return ProviderNotConfigured(
            f"Amazon Bedrock denied the gateway access to `{model}` in {region}. Model access "
            "is probably not enabled: an administrator must request access to this Stability "
            "model in the Bedrock console (Model access) of the account, in that Region; the "
            "gateway's role also needs bedrock:InvokeModel on it (the template's BedrockRegion "
            "parameter grants it). This is the gateway's configuration, not your request.",
            code="bedrock_model_access_denied",
        )
    if code in _CREDENTIAL_CODES or status in (401, 403):
        return UpstreamAuthFailed(
            "Amazon Bedrock rejected the gateway's own AWS credentials. This is a problem with "
            "the gateway's configuration, not with your request or key."
        )
    if code == "ResourceNotFoundException" or status == 404:
        return ModelUnavailable(
            f"Amazon Bedrock does not serve `{model}` in {region} (any more).", param="model"
        )
    if code == "ModelTimeoutException":
        return UpstreamTimeout(
            "Amazon Bedrock's model timed out. The image may still have been generated and "
            "billed, so the gateway does not retry on its own."
        )
    if code == "ServiceUnavailableException":
        return ServiceUnavailable(
            "Amazon Bedrock is unavailable. The gateway does not retry on its own: the request "
            "may have reached the model.",
            code="upstream_unavailable",
        )
    return UpstreamError(f"Amazon Bedrock failed ({code[:60] if code else f'HTTP {status}'}).")


def _retry_after(headers: Mapping[str, str]) -> int:
    value = headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_RETRY_AFTER_SECONDS
    if not 0 < seconds < float("inf"):
        return DEFAULT_RETRY_AFTER_SECONDS
    return min(MAX_RETRY_AFTER_SECONDS, max(1, round(seconds + 0.49)))
