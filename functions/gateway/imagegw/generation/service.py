"""The generation use case, independent of how the request arrived (HTTP, a job, an event).

Two steps, so that a job can be checked when it is submitted and run later:

``prepare_generation``: parse -> resolve the model -> check the key may use it -> validate
against capabilities. Pure apart from reading the catalog; every failure is a 4xx.

``run_generation``: the provider call, given the time that is left (``deadline``), measured
(metrics, a trace subsegment) and logged.

``generate_images`` is both plus delivery, and builds the OpenAI-shaped body and the headers
that say what the gateway did. Jobs store the images themselves and build the same body later.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagegw.catalog import ModelSpec, Resolution
from imagegw.catalog.prices import Cost, cost_body, cost_header
from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidValue,
    MissingParameter,
    PayloadTooLarge,
    StorageUnavailable,
    UpstreamBadResponse,
    UpstreamTimeout,
)
from imagegw.fastpath import jsonbody
from imagegw.generation.context import GenerationContext
from imagegw.generation.cost import COST_HEADER, candidates, generation_cost, spend_ceiling
from imagegw.generation.deadline import MIN_UPSTREAM_SECONDS, Budget, Deadline, no_deadline
from imagegw.generation.delivery import Delivery, as_links, deliver
from imagegw.generation.delivery_policy import DeliveryPolicy
from imagegw.generation.fallbacks import FALLBACK_HEADER, serve
from imagegw.generation.response_size import lambda_response_size
from imagegw.generation.validation import ValidatedRequest, validate
from imagegw.providers.base import ImageResult
from imagegw.schemas import ImageGenerationRequest, parse_generation_request
from imagegw.state.auth import Principal
from imagegw.state.budgets import SpendCeiling
from imagegw.storage import ImageStore

if TYPE_CHECKING:
    from imagegw.generation.reliability import Guard

logger = logging.getLogger(__name__)


@dataclass
class GenerationOutcome:
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    _content: bytes | None = field(default=None, repr=False)
    # What the generation cost (None: the model's price is unknown, or a replayed answer).
    cost: Cost | None = None
    _parts: list[bytes | memoryview] | None = field(default=None, repr=False)

    @property
    def content(self) -> bytes:
        """The body as JSON bytes, serialized once (it can be megabytes of base64)."""
        if self._content is None:
            self._content = (
                jsonbody.dumps(self.body) if self._parts is None else b"".join(self._parts)
            )
        return self._content

    def serialized(self) -> bytes:
        """``content``, for ``Guard.succeeded``: it joins the body only for an Idempotency-Key's
        record."""
        return self.content

    def pieces(self) -> list[bytes | memoryview]:
        """The body as the pieces a server writes in turn (``jsonbody.dump_parts``): the images
        are not copied into a response first. One piece once ``content`` was needed whole (an
        idempotency record, Lambda's size check)."""
        if self._content is not None:
            return [self._content]
        if self._parts is None:
            self._parts = jsonbody.dump_parts(self.body)
        return self._parts


@dataclass(frozen=True)
class PreparedGeneration:
    resolution: Resolution
    validated: ValidatedRequest
    # The request as parsed: its fingerprint for Idempotency-Key, and what fallbacks validate.
    body: ImageGenerationRequest | None = None

    @property
    def model(self) -> str:
        return self.resolution.spec.id

    @property
    def provider(self) -> str:
        return self.resolution.spec.provider


def prepare_generation(
    runtime: GenerationContext,
    principal: Principal,
    raw_body: bytes,
    *,
    delivery: DeliveryPolicy,
) -> PreparedGeneration:
    """Everything that can be checked before paying for a generation.

    ``delivery`` is the entry point's policy for ``response_format`` (delivery_policy.py).
    """
    resolution: Resolution | None = None
    try:
        body = parse_generation_request(raw_body)
        requested = body.model or runtime.settings.default_model
        if requested is None:
            raise MissingParameter(
                "Missing required parameter: 'model'. GET /v1/models lists the models this "
                "gateway serves.",
                param="model",
            )
        resolution = runtime.catalog.resolve(requested, runtime.today())
        principal.require_model(resolution.spec.id)
        check_generates(runtime, resolution.spec)
        validated = validate(
            body,
            resolution,
            timeout_seconds=runtime.settings.upstream_timeout_seconds,
            delivery=delivery,
        )
    except GatewayError as exc:
        spec = resolution.spec if resolution is not None else None
        runtime.telemetry.error(
            code=exc.code,
            provider=spec.provider if spec else None,
            model=spec.id if spec else None,
        )
        raise
    return PreparedGeneration(resolution, validated, body)


def check_generates(runtime: GenerationContext, spec: ModelSpec) -> None:
    """An edit-only model (catalog: ``generations = false``) refuses a generation, saying where
    it is served, rather than failing upstream or editing nothing."""
    if spec.generations:
        return
    today = runtime.today()
    generators = [s.id for s in runtime.catalog if s.generations and not s.is_retired(today)]
    shown = ", ".join(generators[:8]) + (", ..." if len(generators) > 8 else "")
    raise InvalidValue(
        f"The model `{spec.id}` only edits images: it cannot serve /v1/images/generations. "
        "Send it to POST /v1/images/edits (client.images.edit) with an image"
        f"{' and a mask' if spec.mask_required else ''}, or generate with a model that "
        f"generates: {shown or '(none)'} (GET /v1/models: capabilities.generations).",
        param="model",
        code="model_only_edits",
    )


async def run_generation(
    runtime: GenerationContext,
    prepared: PreparedGeneration,
    *,
    client: str,
    deadline: Deadline | None = None,
    principal: Principal | None = None,
) -> ImageResult:
    """The upstream call, with safe retries; with ``principal``, the catalog's fallbacks too.

    ``result.served_by`` names the fallback model when one served (fallbacks.py).
    """
    settings = runtime.settings
    budget: Budget = (
        deadline.budget(settings.upstream_timeout_seconds, settings.response_margin_seconds)
        if deadline is not None
        else no_deadline(settings.upstream_timeout_seconds)
    )
    request = dataclasses.replace(prepared.validated.image_request, timeout_seconds=budget.seconds)
    telemetry = runtime.telemetry
    started = time.perf_counter()
    try:
        if budget.limit != "configured" and budget.seconds < MIN_UPSTREAM_SECONDS:
            raise budget.exhausted()
        async with telemetry.span("upstream", provider=prepared.provider, model=prepared.model):
            try:
                # Retries that cannot bill twice, then fallbacks (retry.py, fallbacks.py).
                served = await serve(
                    runtime,
                    principal,
                    prepared.body,
                    prepared.resolution,
                    dataclasses.replace(prepared.validated, image_request=request),
                )
                result = served.result
                if served.fallback_from is not None:
                    result.served_by = served.resolution.spec.id
            except UpstreamTimeout as exc:
                if budget.limit == "configured":
                    raise
                raise UpstreamTimeout(exc.message + budget.advice()) from exc
        _never_empty(result)
    except GatewayError as exc:
        telemetry.error(code=exc.code, provider=prepared.provider, model=prepared.model)
        if exc.status >= 500:
            # The upstream (or the time it took) failed the call: what the alarm watches.
            telemetry.upstream_failure(provider=prepared.provider)
        raise
    elapsed_ms = (time.perf_counter() - started) * 1000
    # Counted for the model that served: a fallback's images are its own.
    served_spec = served.resolution.spec
    telemetry.upstream_latency(
        provider=served_spec.provider, model=served_spec.id, milliseconds=elapsed_ms
    )
    telemetry.images_generated(
        provider=served_spec.provider, model=served_spec.id, count=len(result.images)
    )
    details: dict[str, Any] = {
        "client": client,
        "provider": served_spec.provider,
        "model": served_spec.id,
        "n": request.n,
        "delivered": len(result.images),
        "upstream_ms": round(elapsed_ms),
        "timeout_s": round(budget.seconds, 1),
    }
    if settings.log_prompts:
        details["prompt"] = request.prompt
    logger.info("generated", extra=details)
    return result


def describe(
    runtime: GenerationContext,
    prepared: PreparedGeneration,
    result: ImageResult,
    delivery: Delivery,
) -> GenerationOutcome:
    """The OpenAI-shaped body (and headers) of a generation delivered as ``delivery``."""
    resolution = prepared.resolution
    model = result.served_by or resolution.spec.id
    headers = {"x-imagegw-model": model, **delivery.headers}
    response: dict[str, Any] = {"created": int(runtime.clock()), "data": delivery.items}
    response.update(_resolved_settings(result))
    # What a provider adds about how it served (Stability: the aspect ratio sent, the seeds);
    # never in place of a field the gateway sets.
    for name, value in result.extra.items():
        response.setdefault(name, value)
    response["model"] = model
    served = runtime.catalog.get(model) if result.served_by else resolution.spec
    cost = generation_cost(served, prepared.validated.image_request, result)
    # Always said, also when unknown ("cost": null, header "unknown"): never silent.
    response["cost"] = cost_body(cost)
    headers[COST_HEADER] = cost_header(cost)
    if resolution.redirected_from is not None:
        headers["x-imagegw-redirected-from"] = resolution.redirected_from.id
        response["redirected_from"] = resolution.redirected_from.id
    if result.served_by is not None:
        headers[FALLBACK_HEADER] = resolution.spec.id
        response["fallback_from"] = resolution.spec.id
    _report_ignored(prepared.validated, response, headers)
    if result.filtered:
        headers["x-imagegw-images-filtered"] = str(result.filtered)
        response["images_filtered"] = result.filtered
    if result.failed:
        headers["x-imagegw-images-failed"] = str(result.failed)
        response["images_failed"] = result.failed
    return GenerationOutcome(response, headers, cost=cost)


async def generate_images(
    runtime: GenerationContext,
    principal: Principal,
    raw_body: bytes,
    *,
    base_url: str,
    delivery: DeliveryPolicy,
    deadline: Deadline | None = None,
    response_limit: int | None = None,
    idempotency_key: str | None = None,
) -> GenerationOutcome:
    """``response_limit``: the largest serialized Lambda result allowed (None: no limit)."""
    prepared = prepare_generation(runtime, principal, raw_body, delivery=delivery)
    return await deliver_prepared(
        runtime,
        principal,
        prepared,
        base_url=base_url,
        deadline=deadline,
        response_limit=response_limit,
        idempotency_key=idempotency_key,
        fallbacks=True,
    )


async def deliver_prepared(
    runtime: GenerationContext,
    principal: Principal,
    prepared: PreparedGeneration,
    *,
    base_url: str,
    deadline: Deadline | None,
    response_limit: int | None,
    idempotency_key: str | None,
    fallbacks: bool,
) -> GenerationOutcome:
    """The paid part of a prepared request (a generation or an edit), guarded: Idempotency-Key
    replay, per-key limits and spend budgets (reliability.py), the upstream call (with the
    catalog's fallbacks when ``fallbacks``), delivery, and the accounting of what it cost."""
    async with guard_of(runtime, principal, prepared, idempotency_key, base_url) as guard:
        if guard.replay is not None:
            return GenerationOutcome(*guard.replay)
        result = await run_generation(
            runtime,
            prepared,
            client=principal.name,
            deadline=deadline,
            principal=principal if fallbacks else None,
        )
        outcome = await _delivered(
            runtime, prepared, result, guard.image_store, base_url, response_limit
        )
        guard.succeeded(
            outcome.serialized,
            outcome.headers,
            delivered=len(result.images),
            model=served_model(prepared, result),
            cost=outcome.cost,
        )
        account(runtime, prepared, result, outcome.cost, key=principal.name)
        return outcome


def guard_of(
    runtime: GenerationContext,
    principal: Principal,
    prepared: PreparedGeneration,
    idempotency_key: str | None,
    base_url: str,
) -> AbstractAsyncContextManager[Guard]:
    """The guard of a prepared request's paid part, streamed or not (reliability.py):
    Idempotency-Key replay, the key's limits for its n images, its spend ceiling."""
    assert prepared.body is not None
    request = prepared.validated.image_request
    return runtime.reliability.guard(
        principal,
        prepared.body,
        idempotency_key,
        images=request.n,
        spend=spend_of(runtime, prepared),
        budget_seconds=request.timeout_seconds,
        image_store=lambda: runtime.image_store,
        base_url=base_url,
    )


def spend_of(runtime: GenerationContext, prepared: PreparedGeneration) -> SpendCeiling:
    """The most the prepared request may cost (what a spend budget holds)."""
    request = prepared.validated.image_request
    models = candidates(runtime.catalog, prepared.resolution.spec)
    ceiling = spend_ceiling(models, request, partial_images=request.partial_images)
    return SpendCeiling(prepared.model, ceiling)


def served_model(prepared: PreparedGeneration, result: ImageResult) -> str:
    """The catalog model whose images these are (a fallback's when one served)."""
    return result.served_by or prepared.resolution.spec.id


def account(
    runtime: GenerationContext,
    prepared: PreparedGeneration,
    result: ImageResult,
    cost: Cost | None,
    *,
    key: str,
) -> None:
    """Count what a delivered generation cost, by model and by key (metrics)."""
    served = runtime.catalog.get(result.served_by) if result.served_by else None
    spec = served or prepared.resolution.spec
    usd = float(cost.amount) if cost is not None else None
    runtime.telemetry.cost(
        provider=spec.provider, model=spec.id, key=key, usd=usd, images=len(result.images)
    )


async def _delivered(
    runtime: GenerationContext,
    prepared: PreparedGeneration,
    result: ImageResult,
    store: ImageStore,
    base_url: str,
    response_limit: int | None,
) -> GenerationOutcome:
    """The images delivered as asked, in a response that fits ``response_limit``."""
    delivery = await deliver(
        result.images, prepared.validated.response_format, lambda: store, base_url=base_url
    )
    if delivery.storage_failed:
        runtime.telemetry.storage_fallback()
    outcome = describe(runtime, prepared, result, delivery)
    if response_limit is None:
        return outcome
    size = lambda_response_size(outcome.content, outcome.headers)
    if size <= response_limit:
        return outcome
    return await _fit_response(
        runtime, prepared, result, delivery, store, base_url, size, response_limit
    )


async def _fit_response(
    runtime: GenerationContext,
    prepared: PreparedGeneration,
    result: ImageResult,
    delivery: Delivery,
    store: ImageStore,
    base_url: str,
    size: int,
    limit: int,
) -> GenerationOutcome:
    """An answer too big for Lambda: links instead when allowed, else a clear error."""
    too_big = f"The images are {size} bytes as base64 JSON, over the {limit}-byte response limit"
    if delivery.storage_failed:
        raise StorageUnavailable(
            f"The gateway could not store the images for URL delivery, and they cannot be "
            f"returned inline: {too_big}. Retry shortly, or ask for a smaller n."
        )
    if not runtime.settings.oversize_to_url:
        raise PayloadTooLarge(
            f"{too_big}. Ask for response_format=url, or a smaller n.",
            param="response_format",
            code="response_too_large",
        )
    try:
        items = await as_links(result.images, store, base_url=base_url)
    except StorageUnavailable as exc:
        raise StorageUnavailable(
            f"{too_big}, and storing them for URL delivery failed. Retry shortly, or ask for "
            "a smaller n."
        ) from exc
    switched = Delivery(
        items, "url", headers={"x-imagegw-delivery": "url; reason=response_too_large"}
    )
    return describe(runtime, prepared, result, switched)


def _never_empty(result: ImageResult) -> None:
    """A 200 always carries an image: a provider that delivered none is an error here."""
    if result.images:
        return
    if result.filtered:
        raise ContentPolicyViolation(
            "Your request was rejected by the upstream provider's safety system: every image "
            "was filtered.",
            code="content_policy_violation",
        )
    raise UpstreamBadResponse("The upstream answered with no images.")


def _resolved_settings(result: ImageResult) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for name in ("background", "output_format", "quality", "size"):
        value = getattr(result, name)
        if value is not None:
            resolved[name] = value
    if result.usage is not None:
        resolved["usage"] = result.usage
    return resolved


def _report_ignored(
    validated: ValidatedRequest, response: dict[str, Any], headers: dict[str, str]
) -> None:
    if validated.ignored_parameters:
        headers["x-imagegw-ignored-params"] = ", ".join(validated.ignored_parameters)
        response["ignored_parameters"] = list(validated.ignored_parameters)
