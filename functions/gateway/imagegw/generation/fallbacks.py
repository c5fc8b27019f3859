"""The upstream step: the requested model (with retries), then its fallbacks if it is down.

A catalog entry may list ``fallbacks``. One is tried only when the requested model failed in a way
that proves nothing was generated (the failures that switch are below: refused, unreachable or
not usable at all), never after an ambiguous timeout or an upstream 5xx, which may have billed.
A fallback serves only a request it would serve identically: it must accept the request as sent
(validated against its own capabilities), with the same ``n``, size, format, quality and other
settings, the same default size when none was given, and the same ignored parameters; the key must
be allowed to use it. The response then names the model that served (``model``,
``x-imagegw-model``) and the one that could not (``fallback_from``, ``x-imagegw-fallback-from``).
All attempts share the request's budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, replace

from imagegw.catalog import Resolution
from imagegw.errors import (
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    PermissionDenied,
    ServiceUnavailable,
    UpstreamAuthFailed,
)
from imagegw.generation.context import GenerationContext
from imagegw.generation.delivery_policy import DeliveryPolicy
from imagegw.generation.validation import ValidatedRequest, validate
from imagegw.providers.base import (
    EXTENSION_PARAMETERS,
    OUTPUT_PARAMETERS,
    ImageRequest,
    ImageResult,
    StreamEvent,
)
from imagegw.schemas import ImageGenerationRequest
from imagegw.state.auth import Principal

logger = logging.getLogger(__name__)

FALLBACK_HEADER = "x-imagegw-fallback-from"
# A fallback is not started with less of the budget left than this.
MIN_FALLBACK_SECONDS = 2.0
_SAME = ("n", *OUTPUT_PARAMETERS, *EXTENSION_PARAMETERS)


@dataclass(frozen=True)
class Served:
    resolution: Resolution
    validated: ValidatedRequest
    result: ImageResult
    fallback_from: str | None = None


def switches(error: GatewayError) -> bool:
    """The requested model provably did nothing: refused, unreachable, or not usable now."""
    return error.should_retry or isinstance(
        error, ServiceUnavailable | UpstreamAuthFailed | ModelUnavailable
    )


def equivalent(primary: ValidatedRequest, candidate: ValidatedRequest) -> bool:
    first, other = primary.image_request, candidate.image_request
    if any(getattr(first, name) != getattr(other, name) for name in _SAME):
        return False
    if first.size is None and first.spec.default_size != other.spec.default_size:
        return False
    return (
        primary.response_format == candidate.response_format
        and primary.ignored_parameters == candidate.ignored_parameters
    )


def candidates(
    runtime: GenerationContext,
    principal: Principal,
    body: ImageGenerationRequest,
    resolution: Resolution,
    validated: ValidatedRequest,
) -> Iterator[tuple[Resolution, ValidatedRequest]]:
    """The fallbacks that would serve this request identically, in the catalog's order.

    None for an edit: ``validate`` checks the body, not the input images, so a fallback's
    request would lack them (and whether it edits, with this many images and a mask, is not
    checked here). An edit is served by the model asked for, or fails (generation/edits.py).
    """
    if validated.image_request.is_edit:
        return
    today = runtime.today()
    for model_id in resolution.spec.fallbacks:
        spec = runtime.catalog.get(model_id)
        if spec is None or not spec.enabled or spec.is_retired(today):
            continue
        try:
            principal.require_model(spec.id)
            fallback = Resolution(resolution.requested, spec, spec.upstream_model)
            # Delivered as the requested model would have been: the resolved format stands.
            checked = validate(
                body,
                fallback,
                timeout_seconds=validated.image_request.timeout_seconds,
                delivery=DeliveryPolicy(validated.response_format),
            )
        except (PermissionDenied, InvalidRequest):
            continue
        if equivalent(validated, checked):
            yield fallback, checked


async def serve(
    runtime: GenerationContext,
    principal: Principal | None,
    body: ImageGenerationRequest | None,
    resolution: Resolution,
    validated: ValidatedRequest,
) -> Served:
    """``validated.image_request`` carries the whole budget. Without the caller's ``principal``
    and ``body`` (which a fallback must be checked against) there are no fallbacks."""
    started = time.monotonic()
    budget = validated.image_request.timeout_seconds
    try:
        result = await _generate(runtime, resolution, validated.image_request)
    except GatewayError as error:
        if principal is None or body is None:
            raise
        if not resolution.spec.fallbacks or not switches(error):
            raise
        first = error
    else:
        return Served(resolution, validated, result)

    for fallback, checked in candidates(runtime, principal, body, resolution, validated):
        remaining = budget - (time.monotonic() - started)
        if remaining < MIN_FALLBACK_SECONDS:
            break
        request = replace(checked.image_request, timeout_seconds=remaining)
        try:
            result = await _generate(runtime, fallback, request)
        except GatewayError as error:
            if not switches(error):
                raise
            continue
        logger.warning(
            "served by a fallback model",
            extra={
                "model": resolution.spec.id,
                "fallback": fallback.spec.id,
                "error_code": first.code,
            },
        )
        return Served(fallback, replace(checked, image_request=request), result, resolution.spec.id)
    raise first


async def _generate(
    runtime: GenerationContext, resolution: Resolution, request: ImageRequest
) -> ImageResult:
    cap = runtime.settings.upstream_max_answer_bytes
    if cap is not None:
        # The operator's cap on one upstream answer, for every provider (providers/base.py).
        request = replace(request, max_answer_bytes=cap)
    provider = await runtime.provider(resolution.spec.provider)
    return await runtime.reliability.retrying(provider).generate(request)


@dataclass
class ServedStream:
    """A stream that has started: its first event is in hand, so the model that serves is known
    (a stream switches to a fallback only before its first event, like a call before its answer).
    """

    resolution: Resolution
    validated: ValidatedRequest
    first: StreamEvent
    events: AsyncGenerator[StreamEvent, None]
    fallback_from: str | None = None


async def serve_stream(
    runtime: GenerationContext,
    principal: Principal,
    body: ImageGenerationRequest,
    resolution: Resolution,
    validated: ValidatedRequest,
) -> ServedStream:
    """``serve`` for ``stream: true``: the requested model's stream, or a fallback's when the
    requested one failed, provably without generating, before its first event."""
    started = time.monotonic()
    budget = validated.image_request.timeout_seconds
    try:
        return await _start(runtime, resolution, validated)
    except GatewayError as error:
        if not resolution.spec.fallbacks or not switches(error):
            raise
        first = error
    for fallback, checked in candidates(runtime, principal, body, resolution, validated):
        remaining = budget - (time.monotonic() - started)
        if remaining < MIN_FALLBACK_SECONDS:
            break
        request = replace(checked.image_request, timeout_seconds=remaining)
        try:
            served = await _start(
                runtime, fallback, replace(checked, image_request=request), resolution.spec.id
            )
        except GatewayError as error:
            if not switches(error):
                raise
            continue
        logger.warning(
            "stream served by a fallback model",
            extra={
                "model": resolution.spec.id,
                "fallback": fallback.spec.id,
                "error_code": first.code,
            },
        )
        return served
    raise first


async def _start(
    runtime: GenerationContext,
    resolution: Resolution,
    validated: ValidatedRequest,
    fallback_from: str | None = None,
) -> ServedStream:
    provider = await runtime.provider(resolution.spec.provider)
    events = runtime.reliability.retrying(provider).stream(validated.image_request)
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    return ServedStream(resolution, validated, first, events, fallback_from)
