"""The catalog's prices applied to one generation: the most it may cost, and what it cost.

``spend_ceiling`` (before the call): ``n`` images at the dearest price the request's parameters
allow, the prompt and any streamed partial images included, over the requested model and the
fallbacks that may serve instead (fallbacks.py); None when the requested model has no known
price. This is what a spend budget holds.

``generation_cost`` (after the call): what the delivered images cost, from the upstream's own
figures when it gave them, else estimated from the catalog (catalog/prices.py); None when the
model that served has no known price.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from imagegw.catalog import Catalog, ModelSpec
from imagegw.catalog.prices import Cost, cost_of, max_cost
from imagegw.providers.base import ImageRequest, ImageResult

COST_HEADER = "x-imagegw-cost-usd"


def candidates(catalog: Catalog, spec: ModelSpec) -> list[ModelSpec]:
    """The model and the fallbacks that may serve a request for it."""
    found = [spec]
    for name in spec.fallbacks:
        fallback = catalog.get(name)
        if fallback is not None:
            found.append(fallback)
    return found


def spend_ceiling(
    models: Sequence[ModelSpec], request: ImageRequest, *, partial_images: int = 0
) -> Decimal | None:
    """The most ``request`` may cost on any of ``models`` (the first is the one asked for).

    A fallback without a known price does not lower the ceiling: if it serves, its cost is
    unknown and the settled amount stays at the hold (state/budgets.py).
    """
    if not models or models[0].price is None:
        return None
    ceilings = [
        max_cost(
            spec.price,
            n=request.n,
            quality=request.quality,
            size=request.size,
            prompt_chars=len(request.prompt),
            partial_images=partial_images,
            input_megapixels=input_megapixels(request),
        )
        for spec in models
        if spec.price is not None
    ]
    return max(ceilings)


def input_megapixels(request: ImageRequest) -> int:
    """The megapixels of an edit's input images, rounded up (what per-megapixel prices bill)."""
    pixels = sum(image.width * image.height for image in request.images)
    return math.ceil(pixels / 1_000_000)


def generation_cost(
    spec: ModelSpec | None, request: ImageRequest, result: ImageResult
) -> Cost | None:
    """What the images of ``result`` cost on ``spec`` (the model that served)."""
    if spec is None:
        return None
    return cost_of(
        spec.price,
        delivered=len(result.images),
        # The settings the images came in, as the upstream reported them, else as asked.
        quality=result.quality or request.quality,
        size=result.size or request.size,
        usage=result.usage,
        reported_usd=result.upstream_cost_usd,
        partial_images=result.partial_images,
        input_images=len(request.images),
    )
