"""Imagen on Vertex AI ``:predict``: the request body and the reading of its answer.

Body fields as the google-genai SDK emits them for Vertex (shared/reference/providers.md §1.1).
Filtered samples come back without bytes (with ``raiFilteredReason``), or not at all: fewer
images than ``sampleCount`` is normal and is reported; none at all is the content-policy 400.
"""

from __future__ import annotations

from typing import Any

import imagegw.providers.google.output as output
from imagegw.errors import ContentPolicyViolation, UpstreamBadResponse
from imagegw.providers.base import MEDIA_TYPES, ImageRequest, ImageResult, upstream_text
from imagegw.providers.google.errors import CONTENT_POLICY_MESSAGE
from imagegw.providers.google.sizes import SizeChoice


def predict_body(request: ImageRequest, choice: SizeChoice) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "sampleCount": request.n,
        "aspectRatio": choice.aspect_ratio,
    }
    if choice.tier is not None:
        parameters["sampleImageSize"] = choice.tier
    if request.watermark is not None:
        parameters["addWatermark"] = request.watermark
    if request.person_generation is not None:
        parameters["personGeneration"] = request.person_generation
    if request.output_format is not None:
        options: dict[str, Any] = {"mimeType": MEDIA_TYPES[request.output_format]}
        if request.output_compression is not None:
            options["compressionQuality"] = request.output_compression
        parameters["outputOptions"] = options
    # Filtered samples then say so instead of silently missing.
    parameters["includeRaiReason"] = True
    return {"instances": [{"prompt": request.prompt}], "parameters": parameters}


def parse_predictions(payload: Any, request: ImageRequest, choice: SizeChoice) -> ImageResult:
    if not isinstance(payload, dict):
        raise UpstreamBadResponse("Google answered with something other than a JSON object.")
    predictions = payload.get("predictions") or []
    if not isinstance(predictions, list):
        raise UpstreamBadResponse("Google answered with predictions that are not a list.")
    default_type = MEDIA_TYPES[request.output_format or "png"]
    images = []
    for prediction in predictions:
        if not isinstance(prediction, dict):
            raise UpstreamBadResponse("Google answered with a prediction that is not an object.")
        if "bytesBase64Encoded" not in prediction:
            continue  # a filtered sample (raiFilteredReason) or safety attributes
        images.append(
            output.image(
                prediction["bytesBase64Encoded"],
                prediction.get("mimeType") or default_type,
                revised_prompt=output.rewritten_prompt(
                    upstream_text(prediction.get("prompt")), request.prompt
                ),
            )
        )
    if len(images) > request.n:
        raise UpstreamBadResponse(
            f"Google answered with {len(images)} images where {request.n} were asked."
        )
    if not images:
        raise ContentPolicyViolation(
            f"{CONTENT_POLICY_MESSAGE} All {request.n} generated image"
            f"{'s were' if request.n > 1 else ' was'} filtered.",
            code="content_policy_violation",
        )
    return ImageResult(
        images=images,
        size=output.resolved_size(images, choice),
        output_format=output.output_format(images),
        filtered=request.n - len(images),
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
