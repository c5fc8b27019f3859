"""The Google provider: Imagen through Vertex ``:predict``, Gemini image models through
``:generateContent`` on Vertex (service account) or the Gemini API (API key).

Translation lives in ``imagen``, ``gemini`` and ``sizes``; this module makes the calls. Imagen
takes ``n`` in one call. The Gemini models make one image per call, so ``n`` is served as ``n``
calls, at most ``MAX_PARALLEL_CALLS`` at a time, under one deadline for the whole request: images
that arrived are delivered even when other calls failed or ran out of time (they were paid for),
and the caller is told how many are missing and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

import imagegw.providers.google.gemini as gemini
import imagegw.providers.google.imagen as imagen
import imagegw.providers.google.output as output
import imagegw.providers.google.sizes as sizes
from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    ProviderNotConfigured,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.fastpath.http_pool import post_for_body
from imagegw.providers.base import (
    ImageProvider,
    ImageRequest,
    ImageResult,
    answer_limit,
    json_body,
    parse_answer,
)
from imagegw.providers.google.errors import CONTENT_POLICY_MESSAGE, translate_error
from imagegw.providers.progress import report_progress

MAX_PARALLEL_CALLS = 4
PREDICT = "predict"
GENERATE_CONTENT = "generateContent"


class TokenSource(Protocol):
    async def token(self) -> str: ...


@dataclass(frozen=True)
class Vertex:
    """Vertex AI with a service account. Imagen is regional; the Gemini image models are served
    from the global endpoint unless ``gemini_location`` says otherwise."""

    project: str
    location: str
    gemini_location: str
    tokens: TokenSource
    base_url: str | None = None  # replaces Google's hosts (tests, private endpoints)

    def url(self, model: str, method: str) -> str:
        location = self.location if method == PREDICT else self.gemini_location
        return (
            f"{self.base_url or _vertex_origin(location)}/v1/projects/{self.project}/locations/"
            f"{location}/publishers/google/models/{model}:{method}"
        )

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.tokens.token()}"}


@dataclass(frozen=True)
class GeminiApi:
    """The Gemini Developer API with an API key (sent in a header, never in the URL)."""

    api_key: str
    base_url: str = "https://generativelanguage.googleapis.com"

    def url(self, model: str) -> str:
        return f"{self.base_url}/v1beta/models/{model}:{GENERATE_CONTENT}"

    async def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.api_key}


def _vertex_origin(location: str) -> str:
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


class GoogleProvider(ImageProvider):
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        vertex: Vertex | None,
        gemini_api: GeminiApi | None,
        connect_timeout_seconds: float = 10.0,
        max_parallel_calls: int = MAX_PARALLEL_CALLS,
    ) -> None:
        self._http = http
        self._vertex = vertex
        self._gemini_api = gemini_api
        self._connect_timeout = connect_timeout_seconds
        self._max_parallel = max_parallel_calls

    async def generate(self, request: ImageRequest) -> ImageResult:
        spec = request.spec
        api = spec.upstream_option("api")
        table = spec.upstream_option("size_table")
        if api not in (PREDICT, GENERATE_CONTENT) or table not in sizes.SIZE_TABLES:
            raise ProviderNotConfigured(
                f"The catalog entry of `{spec.id}` does not say how to reach it: it needs "
                "upstream_options.api ('predict' or 'generateContent') and a known "
                f"upstream_options.size_table ({', '.join(sizes.SIZE_TABLES)})."
            )
        size = request.size or spec.default_size or "1024x1024"
        choice = sizes.choose(table, size, model_id=spec.id)
        if api == PREDICT:
            return await self._predict(request, choice)
        return await self._generate_content(request, choice)

    # ------------------------------------------------------------------ Imagen

    async def _predict(self, request: ImageRequest, choice: sizes.SizeChoice) -> ImageResult:
        vertex = self._vertex
        if vertex is None:
            raise ProviderNotConfigured(
                f"The model `{request.spec.id}` is served by Vertex AI, which needs a service "
                "account: set GOOGLE_APPLICATION_CREDENTIALS (or IMAGEGW_GOOGLE_SERVICE_ACCOUNT_"
                "FILE), or put 'service_account' in the provider secret's 'google' entry."
            )
        body = _encode(imagen.predict_body(request, choice))
        url = vertex.url(request.upstream_model, PREDICT)
        try:
            # One deadline for the token and the call: httpx's read timeout restarts with every
            # chunk, so a trickling upstream could otherwise outlive API Gateway.
            async with asyncio.timeout(request.timeout_seconds):
                payload = await self._post(
                    url,
                    body,
                    vertex.headers,
                    request.timeout_seconds,
                    max_bytes=answer_limit(request),
                )
        except TimeoutError as exc:
            raise _too_slow(request) from exc
        return imagen.parse_predictions(payload, request, choice)

    # ------------------------------------------------------------------ Gemini

    async def _generate_content(
        self, request: ImageRequest, choice: sizes.SizeChoice
    ) -> ImageResult:
        target: Vertex | GeminiApi | None = self._vertex or self._gemini_api
        if target is None:  # build() never makes such a provider; kept for the type checker
            raise ProviderNotConfigured("The provider 'google' has no credentials.")
        url = (
            target.url(request.upstream_model, GENERATE_CONTENT)
            if isinstance(target, Vertex)
            else target.url(request.upstream_model)
        )
        body = _encode(gemini.content_body(request, choice))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_seconds
        gate = asyncio.Semaphore(self._max_parallel)

        done = 0

        async def one_image() -> gemini.CallOutcome:
            nonlocal done
            async with gate:
                remaining = deadline - loop.time()
                # One image per call: the cap is one image's worth.
                payload = await self._post(
                    url, body, target.headers, remaining, max_bytes=answer_limit(request, images=1)
                )
            outcome = gemini.parse_content(payload, request)
            if outcome.image is not None:
                # One call, one image: the fan-out's own count, for a job's progress.
                done += 1
                report_progress(images_done=done)
            return outcome

        calls = [asyncio.ensure_future(one_image()) for _ in range(request.n)]
        try:
            _, late = await asyncio.wait(calls, timeout=request.timeout_seconds)
        finally:
            for call in calls:
                call.cancel()  # no-op for finished calls; stops the rest if we are cancelled
        if late:
            await asyncio.wait(late)
        return _combine(calls, request, choice)

    # ------------------------------------------------------------------ HTTP

    async def _post(
        self,
        url: str,
        body: bytes,
        auth_headers: Callable[[], Awaitable[dict[str, str]]],
        timeout_seconds: float,
        *,
        max_bytes: int,
    ) -> Any:
        if timeout_seconds <= 0:
            raise UpstreamTimeout("The request's deadline passed before the call to Google.")
        headers = {**await auth_headers(), "Content-Type": "application/json"}
        timeout = httpx.Timeout(
            timeout_seconds, connect=min(self._connect_timeout, timeout_seconds)
        )
        try:
            # Read into a buffer that grows with what arrives, cut off beyond ``max_bytes``.
            response, content = await post_for_body(
                self._http,
                url,
                content=body,
                headers=headers,
                timeouts=timeout,
                max_bytes=max_bytes,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamUnreachable(
                "The gateway could not connect to Google; the request was not sent."
            ) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(
                "Google did not answer in time. The image may still have been generated "
                "upstream, so the gateway does not retry on its own."
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                "The connection to Google failed while the request was in flight."
            ) from exc
        if response.status_code != 200:
            raise translate_error(response.status_code, bytes(content), response.headers)
        return parse_answer(content, upstream="Google")


def _combine(
    calls: Sequence[asyncio.Future[gemini.CallOutcome]],
    request: ImageRequest,
    choice: sizes.SizeChoice,
) -> ImageResult:
    images = []
    filtered = 0
    failures: list[GatewayError] = []
    usage: dict[str, int] = {}
    for call in calls:
        if call.cancelled():  # still running at the deadline
            failures.append(_too_slow(request))
            continue
        error = call.exception()
        if isinstance(error, ContentPolicyViolation):
            filtered += 1
        elif isinstance(error, GatewayError):
            failures.append(error)
        elif error is not None:
            raise error  # a bug, not an upstream failure: let it be seen
        else:
            outcome = call.result()
            for name, value in outcome.usage.items():
                usage[name] = usage.get(name, 0) + value
            if outcome.image is None:
                filtered += 1
            else:
                images.append(outcome.image)
    if not images:
        if filtered:
            raise ContentPolicyViolation(
                f"{CONTENT_POLICY_MESSAGE} {filtered} of {request.n} image"
                f"{'s were' if filtered > 1 else ' was'} filtered and none was generated.",
                code="content_policy_violation",
            )
        # A failure that must not be repeated wins over a retryable one (a 429 of another
        # call): the retry table would otherwise send calls again that may be billed.
        final = [failure for failure in failures if not failure.should_retry]
        raise (final or failures)[0]
    return ImageResult(
        images=images,
        size=output.resolved_size(images, choice),
        output_format=output.output_format(images),
        usage=usage or None,
        filtered=filtered,
        failed=len(failures),
    )


def _too_slow(request: ImageRequest) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"Google did not answer within {request.timeout_seconds:g} seconds. The image may "
        "still have been generated upstream, so the gateway does not retry on its own."
    )


def _encode(body: dict[str, Any]) -> bytes:
    return json_body(body)
