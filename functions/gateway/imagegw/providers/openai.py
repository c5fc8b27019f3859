"""OpenAI (and OpenAI-compatible upstreams) through ``POST {base_url}/images/generations``.

Translation is pure functions (``request_body``, ``parse_result``, ``translate_error``); the HTTP
call is ``OpenAIProvider.generate``. Works with any server that speaks the OpenAI Images API,
so ``OPENAI_BASE_URL`` can point at a compatible upstream.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

import httpx

from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    ProviderNotConfigured,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    relayed,
)
from imagegw.fastpath.base64text import Base64Text
from imagegw.fastpath.http_pool import post_for_body
from imagegw.providers.base import (
    MEDIA_TYPES,
    OPENAI_PARAMETERS,
    GeneratedImage,
    ImageProvider,
    ImageRequest,
    ImageResult,
    answer_limit,
    error_document,
    json_body,
    parse_answer,
    upstream_text,
)
from imagegw.settings import Settings

# Parameters sent upstream as given, when the caller gave them (validation already checked the
# model accepts each one).
_PASSED_THROUGH = OPENAI_PARAMETERS
_SAFETY_CODES = frozenset({"content_policy_violation", "moderation_blocked"})
_SAFETY_TYPES = frozenset({"image_generation_user_error"})
# Used when an upstream 429 says nothing about when to come back.
DEFAULT_RETRY_AFTER_SECONDS = 5
# The OpenAI SDK gives up at once on a Retry-After above 120 s; cap so it still retries.
MAX_RETRY_AFTER_SECONDS = 120


def request_body(request: ImageRequest) -> dict[str, Any]:
    """The JSON body OpenAI receives for ``request``."""
    body: dict[str, Any] = {
        "model": request.upstream_model,
        "prompt": request.prompt,
        "n": request.n,
    }
    for name in _PASSED_THROUGH:
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    # GPT image models reject response_format and always answer base64. DALL-E takes it: ask
    # for base64 too, so that every image passes through the gateway's own delivery.
    if request.spec.forwards_response_format:
        body["response_format"] = "b64_json"
    return body


def parse_result(payload: Any, request: ImageRequest) -> ImageResult:
    """An OpenAI ``ImagesResponse`` to an ``ImageResult``; malformed answers are a 502."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise UpstreamBadResponse("The upstream answered without a list of images.")
    output_format = _str_or_none(payload.get("output_format")) or request.output_format or "png"
    media_type = MEDIA_TYPES.get(output_format, "image/png")
    images = []
    for item in payload["data"]:
        if not isinstance(item, dict) or not isinstance(item.get("b64_json"), str | Base64Text):
            raise UpstreamBadResponse("The upstream answered with an image that has no data.")
        images.append(
            GeneratedImage.from_upstream_b64(
                item["b64_json"],
                media_type=media_type,
                revised_prompt=_str_or_none(item.get("revised_prompt")),
            )
        )
    if not images:
        raise UpstreamBadResponse("The upstream answered with no images.")
    if len(images) > request.n:
        raise UpstreamBadResponse(
            f"The upstream answered with {len(images)} images where {request.n} were asked."
        )
    usage = payload.get("usage")
    return ImageResult(
        images=images,
        size=_str_or_none(payload.get("size")),
        quality=_str_or_none(payload.get("quality")),
        background=_str_or_none(payload.get("background")),
        output_format=_str_or_none(payload.get("output_format")),
        usage=usage if isinstance(usage, dict) else None,
        filtered=request.n - len(images),
    )


def translate_error(status: int, content: bytes, headers: Mapping[str, str]) -> GatewayError:
    """An upstream error response to the gateway error the caller sees.

    Decided by status and the structured ``type``/``code``; the upstream's message is passed on
    only for request problems (400), never for failures that are the gateway's own business.
    """
    error = _error_object(content)
    code = _str_or_none(error.get("code"))
    kind = _str_or_none(error.get("type"))
    if status == 400:
        if code in _SAFETY_CODES or kind in _SAFETY_TYPES:
            return ContentPolicyViolation(
                "Your request was rejected by the upstream provider's safety system.",
                code="content_policy_violation",
            )
        # The upstream's own words, scrubbed of anything that looks like a credential: an
        # upstream (or a proxy) may echo the request's headers, the gateway's key included.
        message = relayed(error.get("message")) or "The upstream rejected the request."
        return InvalidRequest(
            f"The upstream rejected the request: {message}",
            param=_name_or_none(error.get("param")),
            code=_name_or_none(code),
        )
    if status in (401, 403):
        return UpstreamAuthFailed(
            "The upstream provider rejected the gateway's own credentials. This is a problem "
            "with the gateway's configuration, not with your request or key."
        )
    if status == 404:
        return ModelUnavailable(
            "The upstream provider does not serve this model (any more).", param="model"
        )
    if status == 429:
        if code == "insufficient_quota" or kind == "insufficient_quota":
            return ServiceUnavailable(
                "The gateway's account with the upstream provider is out of quota.",
                code="upstream_quota_exhausted",
            )
        retry_after = _retry_after_seconds(headers)
        return RateLimited(
            f"The upstream provider is rate-limiting requests. Retry after {retry_after} seconds.",
            headers={"retry-after": str(retry_after)},
            retry_after=upstream_retry_after(headers),
        )
    return UpstreamError(f"The upstream provider failed (HTTP {status}).")


class OpenAIProvider(ImageProvider):
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str,
        base_url: str,
        organization: str | None = None,
        connect_timeout_seconds: float = 10.0,
    ) -> None:
        self._http = http
        # Parsed once: httpx parses and re-quotes a URL string on every request.
        self._url = httpx.URL(base_url.rstrip("/") + "/images/generations")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        if organization:
            self._headers["OpenAI-Organization"] = organization
        self._connect_timeout = connect_timeout_seconds

    async def generate(self, request: ImageRequest) -> ImageResult:
        timeout = httpx.Timeout(
            request.timeout_seconds,
            connect=min(self._connect_timeout, request.timeout_seconds),
        )
        too_slow = UpstreamTimeout(
            f"The upstream provider did not answer within {request.timeout_seconds:g} "
            "seconds. The image may still have been generated upstream, so the gateway "
            "does not retry on its own."
        )
        try:
            # httpx's read timeout restarts with every chunk; the deadline bounds the whole call
            # so a slowly trickling upstream cannot outlive API Gateway's 29 s.
            async with asyncio.timeout(request.timeout_seconds):
                response, content = await post_for_body(
                    self._http,
                    self._url,
                    content=json_body(request_body(request)),
                    headers={**self._headers, "Content-Type": "application/json"},
                    timeouts=timeout,
                    # Cut off beyond what n images of this model can be (issue 12).
                    max_bytes=answer_limit(request),
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamUnreachable(
                "The gateway could not connect to the upstream provider; the request was not sent."
            ) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise too_slow from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                "The connection to the upstream provider failed while the request was in flight."
            ) from exc
        if response.status_code != 200:
            raise translate_error(response.status_code, bytes(content), response.headers)
        # json.loads(content) with the images left as bytes (upstream_json), total.
        payload = parse_answer(content)
        # Only the images (views of the answer) keep the answer's bytes from here on.
        del content
        return parse_result(payload, request)


def build(config: Mapping[str, Any], settings: Settings, http: httpx.AsyncClient) -> OpenAIProvider:
    api_key = config.get("api_key")
    if not isinstance(api_key, str) or not api_key:
        raise ProviderNotConfigured(
            "The provider 'openai' is not configured: set OPENAI_API_KEY (and OPENAI_BASE_URL "
            "for a compatible upstream), or add an 'openai' entry with 'api_key' to the "
            "provider secret."
        )
    base_url = config.get("base_url") or "https://api.openai.com/v1"
    organization = config.get("organization")
    return OpenAIProvider(
        http,
        api_key=api_key,
        base_url=str(base_url),
        organization=str(organization) if organization else None,
        connect_timeout_seconds=settings.upstream_connect_timeout_seconds,
    )


def _error_object(content: bytes) -> dict[str, Any]:
    document = error_document(content)
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else {}


def upstream_retry_after(headers: Mapping[str, str]) -> float | None:
    """The delay the upstream asked for (``retry-after-ms`` or ``retry-after``), if it named one."""
    seconds: float | None = None
    if "retry-after-ms" in headers:
        seconds = _float_or_none(headers["retry-after-ms"])
        seconds = seconds / 1000 if seconds is not None else None
    if seconds is None and "retry-after" in headers:
        seconds = _float_or_none(headers["retry-after"])
    return seconds if seconds is not None and seconds > 0 else None


def _retry_after_seconds(headers: Mapping[str, str]) -> int:
    seconds = upstream_retry_after(headers)
    if seconds is None:
        return DEFAULT_RETRY_AFTER_SECONDS
    return min(MAX_RETRY_AFTER_SECONDS, max(1, math.ceil(seconds)))


def _float_or_none(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _str_or_none(value: object) -> str | None:
    return upstream_text(value)


def _name_or_none(value: object) -> str | None:
    """A parameter name or error code an upstream gave: short, printable, or nothing."""
    text = upstream_text(value)
    return text if text is not None and len(text) <= 100 and text.isprintable() else None
