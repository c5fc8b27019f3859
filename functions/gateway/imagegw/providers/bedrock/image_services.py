"""Stability's Image Services on Amazon Bedrock: the edit models (inpainting), one call's body.

The Image Services take the generators' flat envelope and answer with it too
(shared/reference/providers-2.md §1.5: ``{"seeds", "finish_reasons", "images"}``, parsed by
``invoke.parse_answer``), with tool-specific fields. Inpainting: ``image`` and ``mask`` in
base64, ``prompt``, and optionally ``negative_prompt``, ``seed``, ``grow_mask``,
``output_format``. No aspect ratio: the output keeps the input's size. The mask is sent in
Stability's convention, a grayscale PNG with white = change (``providers.masks``); that Bedrock
follows Stability's own API here is inferred, not confirmed (docs/stability.md).

The catalog names the task (``upstream_options.task``); the models are called through their
``us.`` cross-Region inference profile (the catalog's ``upstream_model``), as on-demand calls of
the base ids are refused.
"""

from __future__ import annotations

import base64
from typing import Any

from imagegw.providers.base import ImageRequest
from imagegw.providers.masks import inpaint_inputs

INPAINT_TASK = "inpaint"
TASKS = (INPAINT_TASK,)


def inpaint_document(request: ImageRequest) -> dict[str, Any]:
    """The ``InvokeModel`` body of one inpainting call (the image unchanged, the mask
    converted), before it is encoded."""
    image, mask, _ = inpaint_inputs(request)
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "image": base64.b64encode(image.data).decode("ascii"),
        "mask": base64.b64encode(mask).decode("ascii"),
    }
    if request.negative_prompt:
        body["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        body["seed"] = request.seed
    if request.grow_mask is not None:
        body["grow_mask"] = request.grow_mask
    if request.output_format is not None:
        body["output_format"] = request.output_format
    return body
