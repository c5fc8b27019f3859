"""Checks a parsed request against the capabilities of the model that will serve it.

Nothing is coerced: a value the model does not take is a 400 naming the parameter and listing
what is allowed. The only things dropped are the parameters the catalog marks as ignored for a
model, and those are reported back to the caller.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from imagegw.catalog import ModelSpec, Resolution
from imagegw.errors import (
    InvalidValue,
    PromptTooLong,
    StreamingNeedsOneImage,
    UnsupportedParameter,
)
from imagegw.generation.delivery_policy import DeliveryPolicy
from imagegw.parameters import (
    BY_NAME,
    COMPRESSIBLE_FORMATS,
    FORWARDED_PARAMETERS,
    TRANSPARENT_FORMATS,
    ResponseFormat,
)
from imagegw.providers.base import MAX_PARTIAL_IMAGES, ImageRequest
from imagegw.schemas import ImageGenerationRequest

_SIZE = re.compile(r"^([1-9][0-9]{0,5})x([1-9][0-9]{0,5})$")


@dataclass(frozen=True)
class ValidatedRequest:
    image_request: ImageRequest
    response_format: ResponseFormat
    ignored_parameters: tuple[str, ...]


def validate(
    body: ImageGenerationRequest,
    resolution: Resolution,
    *,
    timeout_seconds: float,
    delivery: DeliveryPolicy,
) -> ValidatedRequest:
    """``delivery``: the entry point's policy, which resolves ``response_format``."""
    spec = resolution.spec
    _check_prompt(body.prompt, spec)
    n = _check_n(body.n, spec)
    partial_images = _check_streaming(body, n)
    response_format = delivery.resolve(body.response_format)

    given = body.given()
    forwarded: dict[str, object] = {}
    ignored: list[str] = []
    for name in FORWARDED_PARAMETERS:
        if name not in given:
            continue
        if not spec.accepts(name):
            raise UnsupportedParameter(
                f"The model `{spec.id}` does not accept '{name}'. "
                f"It accepts: {_listing(sorted(spec.parameters))}.",
                param=name,
            )
        if name in spec.ignored_parameters:
            ignored.append(name)
            continue
        forwarded[name] = given[name]

    _check_values(forwarded, spec)
    return ValidatedRequest(
        image_request=ImageRequest(
            spec=spec,
            upstream_model=resolution.upstream_model,
            prompt=body.prompt,
            n=n,
            timeout_seconds=timeout_seconds,
            partial_images=partial_images,
            **forwarded,  # type: ignore[arg-type]
        ),
        response_format=response_format,
        ignored_parameters=tuple(ignored),
    )


def _check_prompt(prompt: str, spec: ModelSpec) -> None:
    if not prompt.strip():
        raise InvalidValue("Invalid 'prompt': it must not be empty.", param="prompt")
    if len(prompt) > spec.prompt_max_chars:
        raise PromptTooLong(
            f"Invalid 'prompt': string too long. Expected a string with maximum length "
            f"{spec.prompt_max_chars} for model `{spec.id}`, but got a string with length "
            f"{len(prompt)} instead.",
            param="prompt",
        )


def _check_n(n: int | None, spec: ModelSpec) -> int:
    # Omitted and 0 both mean the default of one image, as documented for the product.
    if n is None or n == 0:
        return 1
    if not 1 <= n <= spec.n_max:
        allowed = "1" if spec.n_max == 1 else f"between 1 and {spec.n_max}"
        raise InvalidValue(
            f"Invalid 'n': {n}. The model `{spec.id}` generates {allowed} image"
            f"{'' if spec.n_max == 1 else 's'} per request.",
            param="n",
        )
    return n


def _check_streaming(body: ImageGenerationRequest, n: int) -> int:
    """The partial images a stream asks for. Every model streams (the provider decides how:
    the upstream's own stream, or the final image as the one event); ``partial_images``
    means nothing without ``stream``, so it is refused there rather than dropped."""
    partial_images = body.partial_images or 0
    if not body.stream:
        if partial_images:
            raise InvalidValue(
                "'partial_images' only applies to streamed requests: send 'stream': true with "
                "it, or leave it out.",
                param="partial_images",
            )
        return 0
    if n > 1:
        raise StreamingNeedsOneImage("Streaming is only supported with n=1.", param="input")
    if not 0 <= partial_images <= MAX_PARTIAL_IMAGES:
        raise InvalidValue(
            f"Invalid value for 'partial_images': {partial_images}. It must be between 0 and "
            f"{MAX_PARTIAL_IMAGES}.",
            param="partial_images",
        )
    return partial_images


def _check_values(forwarded: dict[str, object], spec: ModelSpec) -> None:
    """Each value against the model's published choices and the table's bounds, then the rules
    between parameters. ``size`` has its own check (listed sizes, or the model's free-size rule)."""
    if "size" in forwarded:
        _check_size(str(forwarded["size"]), spec)
    for name, value in forwarded.items():
        row = BY_NAME[name]
        if row.choices is not None and name != "size":
            allowed: tuple[str, ...] = getattr(spec, row.choices)
            if value not in allowed:
                raise InvalidValue(
                    f"Invalid value for '{name}': '{value}'. The model `{spec.id}` "
                    f"supports: {_listing(allowed)}.",
                    param=name,
                )
        if row.minimum is not None and row.maximum is not None:
            assert isinstance(value, int)
            if not row.minimum <= value <= row.maximum:
                raise InvalidValue(
                    f"Invalid value for '{name}': {value}. It must be between {row.minimum} "
                    f"and {row.maximum}.",
                    param=name,
                )
    _check_negative_prompt(forwarded, spec)
    output_format = forwarded.get("output_format", "png")
    if "output_compression" in forwarded and output_format not in COMPRESSIBLE_FORMATS:
        raise InvalidValue(
            "'output_compression' only applies to output_format 'jpeg' or 'webp', but the "
            f"output format is '{output_format}'.",
            param="output_compression",
        )
    if forwarded.get("background") == "transparent" and output_format not in TRANSPARENT_FORMATS:
        raise InvalidValue(
            "A transparent background needs output_format 'png' or 'webp', but the output "
            f"format is '{output_format}'.",
            param="background",
        )


def _check_negative_prompt(forwarded: dict[str, object], spec: ModelSpec) -> None:
    negative = forwarded.get("negative_prompt")
    if isinstance(negative, str) and len(negative) > spec.prompt_max_chars:
        raise PromptTooLong(
            f"Invalid 'negative_prompt': string too long. Expected a string with maximum length "
            f"{spec.prompt_max_chars} for model `{spec.id}`, but got a string with length "
            f"{len(negative)} instead.",
            param="negative_prompt",
        )


def _check_size(size: str, spec: ModelSpec) -> None:
    if size in spec.sizes:
        return
    rule = spec.free_size
    match = _SIZE.match(size)
    if rule is not None and match is not None:
        problem = rule.violation(int(match.group(1)), int(match.group(2)))
        if problem is None:
            return
        raise InvalidValue(
            f"Invalid value for 'size': '{size}': {problem}. The model `{spec.id}` supports "
            f"{_listing(spec.sizes)}, or {rule.describe()}.",
            param="size",
        )
    also = f", or {rule.describe()}" if rule is not None else ""
    raise InvalidValue(
        f"Invalid value for 'size': '{size}'. The model `{spec.id}` supports: "
        f"{_listing(spec.sizes)}{also}.",
        param="size",
    )


def _listing(values: Sequence[str]) -> str:
    if not values:
        return "(none)"
    return ", ".join(f"'{value}'" for value in values)
