"""``stream: true``: the generation (or edit) as OpenAI's image event stream.

``stream_images`` does everything that can fail with a plain HTTP error first: validation,
the Idempotency-Key, the key's limits, and the upstream call up to its first event (with the
retries and fallbacks a non-streamed call gets). So a refused request is an ordinary 4xx/5xx the
SDK raises as usual (``RateLimitError`` with ``Retry-After``, ...). Then it hands back the
headers and the frames, which the route sends as they come:

- ``image_generation.partial_image`` for each partial image the provider produced (OpenAI: the
  upstream's own events, relayed as each arrives; ``local/*``: rendered coarse to fine; other
  providers: none, as their upstreams make none);
- one ``image_generation.completed`` with the final image, delivered as asked (``url``: the
  link and ``expires_at``), and the same gateway fields as a non-streamed answer;
- or, on a failure after the first event, one ``error`` event with OpenAI's error object.

An edit (``stream_prepared`` with a request prepared by ``generation.edits``) streams the same
way with ``image_edit.*`` event names; like a non-streamed edit it never falls back.

The idempotency record and the key's limits are settled when the stream ends, however it
ends: a finished stream keeps its answer (a repeat gets the completed event, without partial
images), a failure is kept or released as for a non-streamed call, and a caller that hung up
mid-stream leaves a kept failure (the upstream was running: it may have billed).

Buffered responses (Lambda through Mangum: the whole body is sent at the end, and must fit in
6 MB) pass ``response_limit``: a partial image is sent only while a final image of the same size
still fits after it, and a final image that does not fit is delivered as a link when allowed,
as for non-streamed answers.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio

from imagegw.errors import GatewayError, StreamInterrupted, UpstreamBadResponse, UpstreamTimeout
from imagegw.generation import stream_events
from imagegw.generation.context import GenerationContext
from imagegw.generation.deadline import MIN_UPSTREAM_SECONDS, Deadline, no_deadline
from imagegw.generation.delivery_policy import DeliveryPolicy
from imagegw.generation.fallbacks import FALLBACK_HEADER, ServedStream, serve_stream
from imagegw.generation.reliability import Guard
from imagegw.generation.response_size import ENVELOPE_ALLOWANCE
from imagegw.generation.service import (
    PreparedGeneration,
    _delivered,
    _never_empty,
    account,
    guard_of,
    prepare_generation,
    served_model,
)
from imagegw.providers.base import Completed, PartialImage
from imagegw.state.auth import Principal

logger = logging.getLogger(__name__)

STREAM_HEADERS = {
    "cache-control": "no-store",
    # Proxies that buffer by default (nginx) pass events on as they come.
    "x-accel-buffering": "no",
}


@dataclass
class ImageStream:
    headers: dict[str, str]
    frames: AsyncIterator[bytes]


async def stream_images(
    runtime: GenerationContext,
    principal: Principal,
    raw_body: bytes,
    *,
    base_url: str,
    delivery: DeliveryPolicy,
    deadline: Deadline | None = None,
    response_limit: int | None = None,
    idempotency_key: str | None = None,
) -> ImageStream:
    prepared = prepare_generation(runtime, principal, raw_body, delivery=delivery)
    return await stream_prepared(
        runtime,
        principal,
        prepared,
        base_url=base_url,
        deadline=deadline,
        response_limit=response_limit,
        idempotency_key=idempotency_key,
    )


async def stream_prepared(
    runtime: GenerationContext,
    principal: Principal,
    prepared: PreparedGeneration,
    *,
    base_url: str,
    deadline: Deadline | None,
    response_limit: int | None,
    idempotency_key: str | None,
) -> ImageStream:
    """The stream of a prepared request: a generation (``image_generation.*`` events) or an
    edit (``image_edit.*``, generation/edits.py), guarded like ``service.deliver_prepared``."""
    names = stream_events.event_names(is_edit=prepared.validated.image_request.is_edit)
    stack = AsyncExitStack()
    guard = await stack.enter_async_context(
        guard_of(runtime, principal, prepared, idempotency_key, base_url)
    )
    if guard.replay is not None:
        await stack.aclose()
        body, headers, _ = guard.replay
        replayed = stream_events.completed_event(body, _requested(prepared), names)
        return ImageStream(
            {**headers, **STREAM_HEADERS},
            _once(stream_events.frame(names.completed, replayed)),
        )
    started = time.perf_counter()
    try:
        served = await start_stream(runtime, principal, prepared, deadline)
    except BaseException as exc:
        if isinstance(exc, GatewayError):
            runtime.telemetry.error(code=exc.code, provider=prepared.provider, model=prepared.model)
        await stack.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    headers = {"x-imagegw-model": served.resolution.spec.id, **STREAM_HEADERS}
    if prepared.resolution.redirected_from is not None:
        headers["x-imagegw-redirected-from"] = prepared.resolution.redirected_from.id
    if served.fallback_from is not None:
        headers[FALLBACK_HEADER] = served.fallback_from
    if prepared.validated.ignored_parameters:
        headers["x-imagegw-ignored-params"] = ", ".join(prepared.validated.ignored_parameters)
    frames = _frames(
        runtime,
        principal,
        prepared,
        served,
        guard,
        stack,
        base_url=base_url,
        response_limit=response_limit,
        started=started,
    )
    return ImageStream(headers, frames)


async def start_stream(
    runtime: GenerationContext,
    principal: Principal,
    prepared: PreparedGeneration,
    deadline: Deadline | None,
) -> ServedStream:
    """The upstream stream up to its first event, within the time the request has."""
    settings = runtime.settings
    budget = (
        deadline.budget(settings.upstream_timeout_seconds, settings.response_margin_seconds)
        if deadline is not None
        else no_deadline(settings.upstream_timeout_seconds)
    )
    if budget.limit != "configured" and budget.seconds < MIN_UPSTREAM_SECONDS:
        raise budget.exhausted()
    request = dataclasses.replace(prepared.validated.image_request, timeout_seconds=budget.seconds)
    validated = dataclasses.replace(prepared.validated, image_request=request)
    assert prepared.body is not None
    try:
        return await serve_stream(runtime, principal, prepared.body, prepared.resolution, validated)
    except UpstreamTimeout as exc:
        if budget.limit == "configured":
            raise
        raise UpstreamTimeout(exc.message + budget.advice()) from exc


def _requested(prepared: PreparedGeneration) -> dict[str, Any]:
    """The output settings as asked; "auto" where the caller left it to the model."""
    request = prepared.validated.image_request
    return {
        "size": request.size or "auto",
        "quality": request.quality or "auto",
        "background": request.background or "auto",
        "output_format": request.output_format or "png",
    }


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


async def _frames(
    runtime: GenerationContext,
    principal: Principal,
    prepared: PreparedGeneration,
    served: ServedStream,
    guard: Guard,
    stack: AsyncExitStack,
    *,
    base_url: str,
    response_limit: int | None,
    started: float,
) -> AsyncGenerator[bytes, None]:
    telemetry = runtime.telemetry
    provider, model = served.resolution.spec.provider, served.resolution.spec.id
    requested = _requested(prepared)
    names = stream_events.event_names(is_edit=prepared.validated.image_request.is_edit)
    created = int(runtime.clock())
    sent = ENVELOPE_ALLOWANCE  # what a buffered result holds so far, headers included
    partials = 0
    # Every partial image the upstream made is billed, also one not relayed (buffered answers).
    upstream_partials = 0
    failure: BaseException | None = None
    events = served.events
    try:
        event = served.first
        while True:
            if isinstance(event, PartialImage):
                upstream_partials += 1
                fields = {**requested, **event.fields}
                created_at = fields.pop("created_at", created)
                data = stream_events.frame(
                    names.partial_image,
                    stream_events.partial_image_event(
                        event.image.b64_text(), event.index, fields, created_at, names
                    ),
                )
                cost = stream_events.frame_cost(data)
                # Buffered: only while a final image as large would still fit after it.
                if response_limit is None or sent + 2 * cost <= response_limit:
                    sent += cost
                    partials += 1
                    yield data
            elif isinstance(event, Completed):
                result = event.result
                _never_empty(result)
                result.partial_images = max(result.partial_images, upstream_partials)
                if served.fallback_from is not None:
                    result.served_by = served.resolution.spec.id
                limit = None if response_limit is None else response_limit - sent
                outcome = await _delivered(
                    runtime, prepared, result, guard.image_store, base_url, limit
                )
                guard.succeeded(
                    outcome.serialized,
                    outcome.headers,
                    delivered=len(result.images),
                    model=served_model(prepared, result),
                    cost=outcome.cost,
                )
                account(runtime, prepared, result, outcome.cost, key=principal.name)
                completed = stream_events.completed_event(outcome.body, requested, names)
                if "x-imagegw-delivery" in outcome.headers:
                    # Said in a header when not streamed; the headers have gone out already.
                    completed["delivery"] = outcome.headers["x-imagegw-delivery"]
                _finished(runtime, principal, prepared, served, started, partials)
                yield stream_events.frame(names.completed, completed)
                return
            # Progress: OpenAI's stream has no such event, and nothing is invented for it.
            try:
                event = await anext(events)
            except StopAsyncIteration:
                raise UpstreamBadResponse(
                    "The upstream's stream ended before the image was complete."
                ) from None
    except GatewayError as exc:
        failure = exc
        telemetry.error(code=exc.code, provider=provider, model=model)
        logger.info("stream failed after it started", extra={"code": exc.code, "model": model})
        yield stream_events.frame(stream_events.ERROR, stream_events.error_event(exc))
    except BaseException as exc:
        failure = exc
        raise
    finally:
        # Shielded: a server cancels the stream of a caller that hung up (anyio cancellation
        # would cancel every await here again), and the record and reservation must still end.
        with anyio.CancelScope(shield=True):
            await events.aclose()
            await _settle(stack, guard, failure)


async def _settle(stack: AsyncExitStack, guard: Guard, failure: BaseException | None) -> None:
    """End the idempotency record and the limits' reservation as the stream ended."""
    if failure is None or guard.answered:
        # Finished (the caller may have hung up on the last event: the answer is kept).
        await stack.aclose()
        return
    if not isinstance(failure, GatewayError):
        failure = StreamInterrupted(
            "The stream was interrupted before the image was complete. The upstream may have "
            "generated (and billed) it, so the same Idempotency-Key does not run it again."
        )
    await stack.__aexit__(type(failure), failure, failure.__traceback__)


def _finished(
    runtime: GenerationContext,
    principal: Principal,
    prepared: PreparedGeneration,
    served: ServedStream,
    started: float,
    partials: int,
) -> None:
    spec = served.resolution.spec
    elapsed_ms = (time.perf_counter() - started) * 1000
    runtime.telemetry.upstream_latency(
        provider=spec.provider, model=spec.id, milliseconds=elapsed_ms
    )
    runtime.telemetry.images_generated(provider=spec.provider, model=spec.id, count=1)
    details: dict[str, Any] = {
        "client": principal.name,
        "provider": spec.provider,
        "model": spec.id,
        "n": 1,
        "delivered": 1,
        "stream": True,
        # Each partial image is billed upstream (OpenAI: 100 output tokens): recorded with the
        # usage, since whether usage counts them is not documented.
        "partial_images": partials,
        "upstream_ms": round(elapsed_ms),
    }
    if runtime.settings.log_prompts:
        details["prompt"] = prepared.validated.image_request.prompt
    logger.info("generated", extra=details)
