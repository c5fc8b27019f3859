"""The generation use case, independent of how the request arrived (HTTP now, events later).

parse -> resolve the model -> check the key may use it -> validate against capabilities ->
provider -> delivery -> OpenAI-shaped body plus the headers that say what the gateway did.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from imagegw import jsonbody
from imagegw.auth import Principal
from imagegw.catalog import Resolution
from imagegw.delivery import Delivery, as_links, deliver
from imagegw.errors import (
    ContentPolicyViolation,
    MissingParameter,
    PayloadTooLarge,
    StorageUnavailable,
    UpstreamBadResponse,
)
from imagegw.providers.base import ImageResult
from imagegw.response_size import lambda_response_size
from imagegw.runtime import Runtime
from imagegw.schemas import parse_generation_request
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
            self._content = jsonbody.dumps(self.body)
        return self._content


async def generate_images(
    runtime: Runtime,
    principal: Principal,
    raw_body: bytes,
    *,
    base_url: str,
    response_limit: int | None = None,
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
    provider = await runtime.provider(resolution.spec.provider)

    started = time.perf_counter()
    result = await provider.generate(validated.image_request)
    logger.info(
        "generated",
        extra={
            "client": principal.name,
            "model": resolution.spec.id,
            "n": validated.image_request.n,
            "delivered": len(result.images),
            "upstream_ms": round((time.perf_counter() - started) * 1000),
        },
    )

    _never_empty(result)
    delivery = await deliver(
        result.images, validated.response_format, lambda: runtime.image_store, base_url=base_url
    )
    outcome = _outcome(runtime, resolution, validated, result, delivery)
    if response_limit is None:
        return outcome
    size = lambda_response_size(outcome.content, outcome.headers)
    if size <= response_limit:
        return outcome
    return await _fit_response(
        runtime, resolution, validated, result, delivery, base_url, size, response_limit
    )


async def _fit_response(
    runtime: Runtime,
    resolution: Resolution,
    validated: ValidatedRequest,
    result: ImageResult,
    delivery: Delivery,
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
        items = await as_links(result.images, runtime.image_store, base_url=base_url)
    except StorageUnavailable as exc:
        raise StorageUnavailable(
            f"{too_big}, and storing them for URL delivery failed. Retry shortly, or ask for "
            "a smaller n."
        ) from exc
    switched = Delivery(
        items, "url", headers={"x-imagegw-delivery": "url; reason=response_too_large"}
    )
    return _outcome(runtime, resolution, validated, result, switched)


def _outcome(
    runtime: Runtime,
    resolution: Resolution,
    validated: ValidatedRequest,
    result: ImageResult,
    delivery: Delivery,
) -> GenerationOutcome:
    headers = {"x-imagegw-model": resolution.spec.id, **delivery.headers}
    response: dict[str, Any] = {"created": int(runtime.clock()), "data": delivery.items}
    response.update(_resolved_settings(result))
    response["model"] = resolution.spec.id
    if resolution.redirected_from is not None:
        headers["x-imagegw-redirected-from"] = resolution.redirected_from.id
        response["redirected_from"] = resolution.redirected_from.id
    _report_ignored(validated, response, headers)
    if result.filtered:
        headers["x-imagegw-images-filtered"] = str(result.filtered)
        response["images_filtered"] = result.filtered
    if result.failed:
        headers["x-imagegw-images-failed"] = str(result.failed)
        response["images_failed"] = result.failed
    return GenerationOutcome(response, headers)


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
