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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from imagegw.errors import ProviderNotConfigured
from imagegw.providers.base import ImageRequest

API_DIMENSIONS = "dimensions"
API_ASPECT_RATIO = "aspect_ratio"
APIS = (API_DIMENSIONS, API_ASPECT_RATIO)
# upstream_options.quality = "mode": OpenAI's quality chooses FLUX 3.1's mode ("auto": BFL's
# default, which is "quality").
QUALITY_AS_MODE = "mode"
_MODES = {"low": "fast", "high": "quality"}


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
    if api == API_DIMENSIONS:
        body["width"] = width
        body["height"] = height
    else:
        body["aspect_ratio"] = aspect_ratio(width, height)
    if request.output_format is not None:
        body["output_format"] = request.output_format
    if request.quality in _MODES and spec.upstream_option("quality") == QUALITY_AS_MODE:
        body["mode"] = _MODES[request.quality]
    return Shape(body, size, exact=api == API_DIMENSIONS)


# Ratios BFL writes in other than lowest terms (its lists say 21:9, never 7:3).
_BFL_NAMES = {(7, 3): "21:9", (3, 7): "9:21"}


def aspect_ratio(width: int, height: int) -> str:
    """``width:height`` as BFL writes ratios: lowest terms ("16:9", "7:4"), except 21:9."""
    divisor = math.gcd(width, height)
    reduced = (width // divisor, height // divisor)
    return _BFL_NAMES.get(reduced, f"{reduced[0]}:{reduced[1]}")
