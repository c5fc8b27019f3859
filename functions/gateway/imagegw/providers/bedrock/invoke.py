"""Stability's text-to-image models on Amazon Bedrock: one ``InvokeModel`` body and its answer.

The same flat envelope serves Stable Image Ultra, Stable Image Core and SD3.5 Large
(shared/reference/providers-2.md §1.2): ``prompt``, ``aspect_ratio`` (never a size),
``negative_prompt``, ``seed`` and ``output_format``; exactly one image per call. The answer is
``{"seeds": [...], "finish_reasons": [...], "images": [...]}``. A filtered prompt or image is an
HTTP 200 whose ``finish_reasons`` names the filter ("Filter reason: prompt" / "output image" /
"input image") with no usable image: a withheld slot here, never an image.
"""

from __future__ import annotations

import base64
from typing import Any

from imagegw.errors import UpstreamBadResponse, UpstreamError
from imagegw.providers.aspect_ratios import RatioChoice
from imagegw.providers.base import MEDIA_TYPES, GeneratedImage, ImageRequest
from imagegw.providers.base import parse_answer as parse_json_answer
from imagegw.providers.dimensions import image_format
from imagegw.providers.fanout import Slot
from imagegw.providers.inputs import image_strength

FILTER_PREFIX = "Filter reason"


def invoke_document(request: ImageRequest, choice: RatioChoice) -> dict[str, Any]:
    """The ``InvokeModel`` body of one call, before it is encoded."""
    body: dict[str, Any] = {"prompt": request.prompt, "aspect_ratio": choice.aspect_ratio}
    if request.is_edit:
        # Image-to-image (SD3.5 Large): the output follows the input, so no aspect ratio.
        (image,) = request.images  # the catalog allows one
        del body["aspect_ratio"]
        body["mode"] = "image-to-image"
        body["image"] = base64.b64encode(image.data).decode("ascii")
        body["strength"] = float(image_strength(request.spec))
    if request.negative_prompt:
        body["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        body["seed"] = request.seed
    if request.output_format is not None:
        body["output_format"] = request.output_format
    return body


def parse_answer(content: bytes | bytearray) -> Slot:
    # Total: not JSON, nested too deeply, NaN or Infinity are each a 502 (providers.base).
    payload = parse_json_answer(content, upstream="Amazon Bedrock")
    if not isinstance(payload, dict):
        raise UpstreamBadResponse("Amazon Bedrock answered with something other than an object.")
    reason = _first(payload.get("finish_reasons"))
    if isinstance(reason, str) and reason.startswith(FILTER_PREFIX):
        return Slot(None, filter_reason=reason[:80])
    if reason is not None:
        # "Inference error": the model ran and failed; whether it was billed is not said.
        raise UpstreamError(f"Amazon Bedrock could not generate the image ({str(reason)[:80]}).")
    images = payload.get("images")
    if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str):
        count = len(images) if isinstance(images, list) else "no list of"
        raise UpstreamBadResponse(
            f"Amazon Bedrock answered with {count} images where one was expected."
        )
    kind = image_format(images[0])
    if kind is None:
        raise UpstreamBadResponse("Amazon Bedrock answered with data that is not a PNG or JPEG.")
    seed = _first(payload.get("seeds"))
    return Slot(
        GeneratedImage.from_upstream_b64(images[0], media_type=MEDIA_TYPES[kind]),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
    )


def _first(values: object) -> object:
    return values[0] if isinstance(values, list) and values else None
