"""The generation use case, independent of how the request arrived (HTTP now, events later).

parse -> resolve the model -> check the key may use it -> validate against capabilities ->
provider -> delivery -> OpenAI-shaped body plus the headers that say what the gateway did.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from imagegw.auth import Principal
from imagegw.delivery import Delivery, as_links, deliver
from imagegw.errors import MissingParameter, PayloadTooLarge, StorageUnavailable
from imagegw.fallbacks import FALLBACK_HEADER, Served, serve
from imagegw.providers.base import ImageResult
from imagegw.response_size import lambda_response_size
from imagegw.runtime import Runtime
from imagegw.schemas import parse_generation_request
from imagegw.storage import ImageStore
from imagegw.validation import ValidatedRequest, validate

logger = logging.getLogger(__name__)


@dataclass
class GenerationOutcome:
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    _content: bytes | None = field(default=None, repr=False)

    @property
    def content(self) -> bytes:
        """The body as JSON bytes, serialized once (it can be megabytes of base64)."""
        if self._content is None:
            self._content = json.dumps(self.body, ensure_ascii=False).encode("utf-8")
        return self._content


async def generate_images(
    runtime: Runtime,
    principal: Principal,
    raw_body: bytes,
    *,
    base_url: str,
    response_limit: int | None = None,
    idempotency_key: str | None = None,
) -> GenerationOutcome:
    """``response_limit``: the largest serialized Lambda result allowed (None: no limit)."""
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
    validated = validate(
        body, resolution, timeout_seconds=runtime.settings.upstream_timeout_seconds
    )
    # Idempotency-Key replay and per-key limits around the paid part (reliability.py).
    async with runtime.reliability.guard(
        principal,
        body,
        idempotency_key,
        images=validated.image_request.n,
        budget_seconds=validated.image_request.timeout_seconds,
        image_store=runtime.image_store,
        base_url=base_url,
    ) as guard:
        if guard.replay is not None:
            return GenerationOutcome(*guard.replay)
        started = time.perf_counter()
        served = await serve(runtime, principal, body, resolution, validated)
        logger.info(
            "generated",
            extra={
                "client": principal.name,
                "model": served.resolution.spec.id,
                "n": served.validated.image_request.n,
                "delivered": len(served.result.images),
                "upstream_ms": round((time.perf_counter() - started) * 1000),
            },
        )
        outcome = await _delivered(runtime, served, guard.image_store, base_url, response_limit)
        guard.succeeded(outcome.content, outcome.headers, delivered=len(served.result.images))
        return outcome


async def _delivered(
    runtime: Runtime,
    served: Served,
    store: ImageStore,
    base_url: str,
    response_limit: int | None,
) -> GenerationOutcome:
    """The served images delivered as asked, in a response that fits ``response_limit``."""
    images, response_format = served.result.images, served.validated.response_format
    delivery = await deliver(images, response_format, store, base_url=base_url)
    outcome = _outcome(runtime, served, delivery)
    if response_limit is None:
        return outcome
    size = lambda_response_size(outcome.content, outcome.headers)
    if size <= response_limit:
        return outcome
    return await _fit_response(runtime, served, delivery, store, base_url, size, response_limit)


async def _fit_response(
    runtime: Runtime,
    served: Served,
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
        items = await as_links(served.result.images, store, base_url=base_url)
    except StorageUnavailable as exc:
        raise StorageUnavailable(
            f"{too_big}, and storing them for URL delivery failed. Retry shortly, or ask for "
            "a smaller n."
        ) from exc
    switched = Delivery(
        items, "url", headers={"x-imagegw-delivery": "url; reason=response_too_large"}
    )
    return _outcome(runtime, served, switched)


def _outcome(runtime: Runtime, served: Served, delivery: Delivery) -> GenerationOutcome:
    resolution, validated, result = served.resolution, served.validated, served.result
    headers = {"x-imagegw-model": resolution.spec.id, **delivery.headers}
    response: dict[str, Any] = {"created": int(runtime.clock()), "data": delivery.items}
    response.update(_resolved_settings(result))
    response["model"] = resolution.spec.id
    if resolution.redirected_from is not None:
        headers["x-imagegw-redirected-from"] = resolution.redirected_from.id
        response["redirected_from"] = resolution.redirected_from.id
    if served.fallback_from is not None:
        headers[FALLBACK_HEADER] = served.fallback_from
        response["fallback_from"] = served.fallback_from
    _report_ignored(validated, response, headers)
    if result.filtered:
        headers["x-imagegw-images-filtered"] = str(result.filtered)
        response["images_filtered"] = result.filtered
    return GenerationOutcome(response, headers)


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
