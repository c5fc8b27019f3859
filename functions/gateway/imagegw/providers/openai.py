"""OpenAI (and OpenAI-compatible upstreams): ``POST {base_url}/images/generations`` (JSON) and
``POST {base_url}/images/edits`` (multipart/form-data, for a request with input images).

Translation is pure functions (``request_body``, ``parse_result``, ``translate_error``); the HTTP
call is ``OpenAIProvider.generate``. Works with any server that speaks the OpenAI Images API,
so ``OPENAI_BASE_URL`` can point at a compatible upstream.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
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
from imagegw.fastpath import upstream_json
from imagegw.fastpath.base64text import AlphabetCensus, Base64Text
from imagegw.fastpath.http_pool import ACCEPT_ENCODING, iter_body, post_for_body
from imagegw.providers.base import (
    MEDIA_TYPES,
    OPENAI_PARAMETERS,
    Completed,
    GeneratedImage,
    ImageProvider,
    ImageRequest,
    ImageResult,
    PartialImage,
    StreamEvent,
    answer_limit,
    error_document,
    json_body,
    parse_answer,
    upstream_text,
)
from imagegw.providers.sse import ServerSentEvent, SSEDecoder
from imagegw.settings import Settings

# Parameters sent upstream as given, when the caller gave them (validation already checked the
# model accepts each one).
_PASSED_THROUGH = OPENAI_PARAMETERS
_SAFETY_CODES = frozenset({"content_policy_violation", "moderation_blocked"})
_SAFETY_TYPES = frozenset({"image_generation_user_error"})
# What a request problem looks like when it arrives as an error event inside a stream.
_REQUEST_ERROR_TYPES = frozenset({"invalid_request_error", *_SAFETY_TYPES})
# The fields of a partial image event besides the image, relayed as the upstream sent them.
PARTIAL_FIELDS = ("created_at", "size", "quality", "background", "output_format")
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


# Edit form fields besides the files, in the order OpenAI documents them. Never response_format:
# GPT image models refuse it and always answer base64.
_EDIT_FIELDS = ("n", *OPENAI_PARAMETERS, "input_fidelity")
# Form fields OpenAI's edit takes as multipart (moderation is JSON-only, style DALL-E-only).
_NOT_IN_EDIT_FORM = frozenset({"moderation", "style"})


def edit_form(request: ImageRequest, *, boundary: str, stream: bool = False) -> tuple[bytes, str]:
    """The multipart/form-data body of ``POST /images/edits`` and its Content-Type.

    One image goes as ``image``, several as repeated ``image[]`` (what the OpenAI SDK sends);
    the mask as ``mask``, unchanged (OpenAI's own convention). Files get neutral names: the
    caller's file names are not passed on. With ``stream``, the form also asks for the event
    stream (``stream=true``, ``partial_images``), as the SDK's ``images.edit(stream=True)`` does.
    """
    data: dict[str, str] = {"model": request.upstream_model, "prompt": request.prompt}
    for name in _EDIT_FIELDS:
        value = getattr(request, name)
        if value is not None and name not in _NOT_IN_EDIT_FORM:
            data[name] = str(value)
    if stream:
        data["stream"] = "true"
        data["partial_images"] = str(request.partial_images)
    field = "image" if len(request.images) == 1 else "image[]"
    files: list[tuple[str, tuple[str, bytes, str]]] = [
        (field, (image.filename(f"image-{index}"), image.data, image.media_type))
        for index, image in enumerate(request.images)
    ]
    if request.mask is not None:
        mask = request.mask
        files.append(("mask", (mask.filename("mask"), mask.data, mask.media_type)))
    content_type = f"multipart/form-data; boundary={boundary}"
    encoded = httpx.Request(
        "POST",
        "http://upstream.invalid/",
        data=data,
        files=files,
        headers={"Content-Type": content_type},
    )
    return encoded.read(), content_type


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


def stream_body(request: ImageRequest) -> dict[str, Any]:
    """The JSON body of a streamed generation: the same request, plus the stream settings."""
    return {**request_body(request), "stream": True, "partial_images": request.partial_images}


def stream_error(error: object) -> GatewayError:
    """An error event inside the upstream's stream, as the error of a response with a status:
    a request problem (moderation included) as a 400 would be, anything else as a 5xx."""
    details = error if isinstance(error, dict) else {}
    kind = _str_or_none(details.get("type"))
    status = 400 if kind in _REQUEST_ERROR_TYPES else 500
    return translate_error(status, json_body({"error": details}), {})


def parse_event(event: ServerSentEvent, request: ImageRequest) -> StreamEvent | None:
    """One upstream SSE event: a partial image, the completed image, or None (nothing for us).

    Only the Images API's own events count (``image_generation.*``; edits use ``image_edit.*``);
    other types are skipped, so a field or event OpenAI adds later breaks nothing.
    """
    if event.data.strip() == b"[DONE]":
        return None
    try:
        # Total: deep nesting, NaN and Infinity are a ValueError too (upstream_json.parse).
        document = upstream_json.parse(event.data)
    except ValueError as exc:
        raise UpstreamBadResponse("The upstream streamed an event that is not JSON.") from exc
    if not isinstance(document, dict):
        raise UpstreamBadResponse("The upstream streamed an event that is not a JSON object.")
    if document.get("error") or document.get("type") == "error" or event.event == "error":
        raise stream_error(document.get("error"))
    kind = _str_or_none(document.get("type")) or event.event or ""
    if not kind.endswith((".partial_image", ".completed")):
        return None
    output_format = _str_or_none(document.get("output_format")) or request.output_format or "png"
    b64 = document.get("b64_json")
    if not isinstance(b64, str):
        raise UpstreamBadResponse("The upstream streamed an image event without image data.")
    image = GeneratedImage.from_upstream_b64(
        b64,
        media_type=MEDIA_TYPES.get(output_format, "image/png"),
        revised_prompt=_str_or_none(document.get("revised_prompt")),
    )
    if kind.endswith(".partial_image"):
        index = document.get("partial_image_index")
        return PartialImage(
            index if isinstance(index, int) else 0,
            image,
            {name: document[name] for name in PARTIAL_FIELDS if name in document},
        )
    usage = document.get("usage")
    return Completed(
        ImageResult(
            images=[image],
            size=_str_or_none(document.get("size")),
            quality=_str_or_none(document.get("quality")),
            background=_str_or_none(document.get("background")),
            output_format=_str_or_none(document.get("output_format")),
            usage=usage if isinstance(usage, dict) else None,
        )
    )


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
        self._edit_url = httpx.URL(base_url.rstrip("/") + "/images/edits")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        if organization:
            self._headers["OpenAI-Organization"] = organization
        self._connect_timeout = connect_timeout_seconds

    def _timeouts(self, request: ImageRequest) -> httpx.Timeout:
        return httpx.Timeout(
            request.timeout_seconds,
            connect=min(self._connect_timeout, request.timeout_seconds),
        )

    async def generate(self, request: ImageRequest) -> ImageResult:
        timeout = self._timeouts(request)
        # The base64 check of the images, done on the answer's pieces as they arrive.
        census = AlphabetCensus()
        try:
            # httpx's read timeout restarts with every chunk; the deadline bounds the whole call
            # so a slowly trickling upstream cannot outlive API Gateway's 29 s.
            async with asyncio.timeout(request.timeout_seconds):
                url, body, content_type = self._encoded(request)
                response, content = await post_for_body(
                    self._http,
                    url,
                    content=body,
                    headers={**self._headers, "Content-Type": content_type},
                    timeouts=timeout,
                    # Cut off beyond what n images of this model can be (issue 12).
                    max_bytes=answer_limit(request),
                    census=census,
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamUnreachable(
                "The gateway could not connect to the upstream provider; the request was not sent."
            ) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise _too_slow(request) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                "The connection to the upstream provider failed while the request was in flight."
            ) from exc
        if response.status_code != 200:
            raise translate_error(response.status_code, bytes(content), response.headers)
        # json.loads(content) with the images left as bytes (upstream_json), total.
        payload = parse_answer(content, outside=census.outside)
        # Only the images (views of the answer) keep the answer's bytes from here on.
        del content
        return parse_result(payload, request)

    def _encoded(
        self, request: ImageRequest, *, stream: bool = False
    ) -> tuple[httpx.URL, bytes, str]:
        """Where the request goes, its body and Content-Type: JSON, or a form for an edit;
        with ``stream``, asking for the upstream's event stream."""
        if request.is_edit:
            body, content_type = edit_form(request, boundary=secrets.token_hex(16), stream=stream)
            return self._edit_url, body, content_type
        document = stream_body(request) if stream else request_body(request)
        return self._url, json_body(document), "application/json"

    async def stream(self, request: ImageRequest) -> AsyncGenerator[StreamEvent, None]:
        """The upstream's own stream, each event passed on as soon as it has arrived: of
        ``/images/generations``, or of ``/images/edits`` for an edit (``image_edit.*`` events).

        DALL-E models do not stream: they get the default (the result when it is ready). An
        OpenAI-compatible upstream that answers a streamed request with plain JSON is served
        the same way. The whole stream shares the request's deadline.
        """
        if request.spec.forwards_response_format:
            async for event in super().stream(request):
                yield event
            return
        deadline = asyncio.get_running_loop().time() + request.timeout_seconds
        url, body, content_type = self._encoded(request, stream=True)
        outgoing = self._http.build_request(
            "POST",
            url,
            content=body,
            headers={
                **self._headers,
                # Only encodings the gateway inflates with a bound (http_pool).
                "Accept-Encoding": ACCEPT_ENCODING,
                "Content-Type": content_type,
                "Accept": "text/event-stream",
            },
            timeout=self._timeouts(request),
        )
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._http.send(outgoing, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamUnreachable(
                "The gateway could not connect to the upstream provider; the request was not sent."
            ) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise _too_slow(request) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                "The connection to the upstream provider failed while the request was in flight."
            ) from exc
        chunks: AsyncGenerator[bytes, None] | None = None
        try:
            # Decoded and capped: the partial images and the final ones, with headroom
            # (answer_limit); beyond it the stream is cut off with a 502.
            images = request.n * (1 + (request.partial_images or 0))
            chunks = iter_body(response, answer_limit(request, images=images))
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if response.status_code != 200 or media_type != "text/event-stream":
                content = bytearray()
                while (chunk := await _next_chunk(chunks, deadline, request)) is not None:
                    content += chunk
                if response.status_code != 200:
                    raise translate_error(response.status_code, bytes(content), response.headers)
                payload = parse_answer(content)
                yield Completed(parse_result(payload, request))
                return
            decoder = SSEDecoder()
            while True:
                chunk = await _next_chunk(chunks, deadline, request)
                events = decoder.end() if chunk is None else decoder.feed(chunk)
                for upstream_event in events:
                    parsed = parse_event(upstream_event, request)
                    if parsed is None:
                        continue
                    yield parsed
                    if isinstance(parsed, Completed):
                        return
                if chunk is None:
                    raise UpstreamBadResponse(
                        "The upstream's stream ended before the image was complete."
                    )
        finally:
            if chunks is not None:
                await chunks.aclose()
            await response.aclose()


async def _next_chunk(
    chunks: AsyncIterator[bytes], deadline: float, request: ImageRequest
) -> bytes | None:
    """The next piece of the answer (None at its end), within the whole call's deadline."""
    try:
        async with asyncio.timeout_at(deadline):
            return await anext(chunks, None)
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise _too_slow(request) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(
            "The connection to the upstream provider failed while the answer was arriving."
        ) from exc


def _too_slow(request: ImageRequest) -> UpstreamTimeout:
    # Built when raised, never ahead: every error message is scrubbed (redaction.py) on creation.
    return UpstreamTimeout(
        f"The upstream provider did not answer within {request.timeout_seconds:g} "
        "seconds. The image may still have been generated upstream, so the gateway "
        "does not retry on its own."
    )


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
