"""The JSON body BFL receives for a request: pure functions, one per request shape.

BFL's models take one of two shapes of size, and the catalog says which
(``upstream_options.api``):

``dimensions``    ``width`` and ``height`` in pixels (FLUX.2, FLUX 1.1 [pro], FLUX 3.1). The
                  catalog's ``sizes`` / ``free_size`` are BFL's own rules, so a size validation
                  let through is sent exactly as asked.
``aspect_ratio``  ``aspect_ratio`` only (FLUX 1.1 [pro] Ultra, Kontext, FLUX 3): the model picks
                  the resolution. The requested ``WxH`` is sent as its reduced ratio
                  (1792x1024 -> "7:4"); the catalog lists only sizes whose ratio the model takes,
                  and the response's ``size`` is the one read from the image that came back.

Only fields BFL documents for the model are sent: its schemas refuse unknown fields with a 422.

An edit's input images go as base64, in the field the model takes (``upstream_options.
input_images``): ``numbered`` (``input_image``, ``input_image_2`` … : FLUX.2, Kontext) or
``list`` (``images``: FLUX 3, FLUX 3.1). A mask (FLUX 3.1 only, ``upstream_options.mask``) is
converted from OpenAI's alpha convention to BFL's white = change (``providers.masks``). Without a
``size``, an edit sends no width/height or ratio, so BFL keeps the first image's shape.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

from imagegw.errors import InvalidValue, ProviderNotConfigured
from imagegw.providers.base import ImageRequest
from imagegw.providers.masks import mask_bytes

API_DIMENSIONS = "dimensions"
API_ASPECT_RATIO = "aspect_ratio"
APIS = (API_DIMENSIONS, API_ASPECT_RATIO)
# upstream_options.quality = "mode": OpenAI's quality chooses FLUX 3.1's mode ("auto": BFL's
# default, which is "quality").
QUALITY_AS_MODE = "mode"
_MODES = {"low": "fast", "high": "quality"}
# Seeds stay in the range the gateway accepts (0 to 4294967294).
SEED_WRAP = 4_294_967_295


@dataclass(frozen=True)
class Shape:
    body: dict[str, Any]
    # The size asked for (or the catalog default), and whether BFL was asked for exactly it.
    size: str
    exact: bool


def submit_body(request: ImageRequest) -> Shape:
    spec = request.spec
    api = spec.upstream_option("api")
    size = request.size or spec.default_size
    if api not in APIS or size is None:
        raise ProviderNotConfigured(
            f"The catalog entry of `{spec.id}` does not say how to reach it: it needs "
            f"upstream_options.api ({', '.join(APIS)}) and a default_size."
        )
    width, height = (int(side) for side in size.split("x"))
    body: dict[str, Any] = {"prompt": request.prompt}
    keeps_input_shape = request.is_edit and request.size is None
    if keeps_input_shape:
        pass  # BFL follows the first input image
    elif api == API_DIMENSIONS:
        body["width"] = width
        body["height"] = height
    else:
        body["aspect_ratio"] = aspect_ratio(width, height)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.is_edit:
        body.update(edit_fields(request))
    if request.output_format is not None:
        body["output_format"] = request.output_format
    if request.quality in _MODES and spec.upstream_option("quality") == QUALITY_AS_MODE:
        body["mode"] = _MODES[request.quality]
    return Shape(body, size, exact=api == API_DIMENSIONS and not keeps_input_shape)


INPUTS_NUMBERED = "numbered"
INPUTS_LIST = "list"


def edit_fields(request: ImageRequest) -> dict[str, Any]:
    """The input images (and mask) of an edit, in the fields the model takes."""
    spec = request.spec
    kind = spec.upstream_option("input_images")
    encoded = [_b64(image.data) for image in request.images]
    fields: dict[str, Any]
    if kind == INPUTS_NUMBERED:
        fields = {
            "input_image" if index == 0 else f"input_image_{index + 1}": data
            for index, data in enumerate(encoded)
        }
    elif kind == INPUTS_LIST:
        fields = {"images": encoded}
    else:
        raise ProviderNotConfigured(
            f"The catalog entry of `{spec.id}` says it edits but not how: it needs "
            f"upstream_options.input_images ({INPUTS_NUMBERED} or {INPUTS_LIST})."
        )
    if request.mask is not None:
        convention = spec.upstream_option("mask")
        if convention is None:  # validation refuses a mask for a maskless model first
            raise ProviderNotConfigured(f"The catalog entry of `{spec.id}` names no mask field.")
        with_mask = spec.upstream_option("max_images_with_mask")
        if with_mask is not None and len(request.images) > int(with_mask):
            raise InvalidValue(
                f"The model `{spec.id}` takes at most {with_mask} input images together with a "
                f"mask; {len(request.images)} were given.",
                param="image",
                code="too_many_images",
            )
        data, _ = mask_bytes(request.mask, convention)
        fields["mask"] = _b64(data)
    return fields


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# Ratios BFL writes in other than lowest terms (its lists say 21:9, never 7:3).
_BFL_NAMES = {(7, 3): "21:9", (3, 7): "9:21"}


def for_image(body: dict[str, Any], index: int) -> dict[str, Any]:
    """The body of the ``index``-th image of a fan-out: with a seed, seed + index, so that ``n``
    images are ``n`` reproducible variations rather than ``n`` paid copies of one."""
    if "seed" not in body or index == 0:
        return body
    return {**body, "seed": (body["seed"] + index) % SEED_WRAP}


def aspect_ratio(width: int, height: int) -> str:
    """``width:height`` as BFL writes ratios: lowest terms ("16:9", "7:4"), except 21:9."""
    divisor = math.gcd(width, height)
    reduced = (width // divisor, height // divisor)
    return _BFL_NAMES.get(reduced, f"{reduced[0]}:{reduced[1]}")
