"""The generation use case, independent of how the request arrived (HTTP now, events later).

parse -> resolve the model -> check the key may use it -> validate against capabilities ->
provider -> delivery -> OpenAI-shaped body plus the headers that say what the gateway did.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from imagegw.auth import Principal
from imagegw.delivery import deliver
from imagegw.errors import ContentPolicyViolation, MissingParameter, UpstreamBadResponse
from imagegw.providers.base import ImageResult
from imagegw.runtime import Runtime
from imagegw.schemas import parse_generation_request
from imagegw.validation import ValidatedRequest, validate

logger = logging.getLogger(__name__)


@dataclass
class GenerationOutcome:
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


async def generate_images(
    runtime: Runtime, principal: Principal, raw_body: bytes, *, base_url: str
) -> GenerationOutcome:
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
        result.images, validated.response_format, runtime.image_store, base_url=base_url
    )
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
