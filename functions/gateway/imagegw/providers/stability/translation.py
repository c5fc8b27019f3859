"""The Stability AI REST API v2beta: one call's form fields, its answer and its errors.

``POST {base}/v2beta/stable-image/generate/{ultra|core|sd3}`` (shared/reference/providers-2.md
§3), or ``POST {base}/v2beta/stable-image/edit/inpaint`` (image, mask, prompt ...), with
``accept: application/json`` answers ``{"image": "<base64>", "finish_reason": "SUCCESS" |
"CONTENT_FILTERED", "seed": n}``. ``CONTENT_FILTERED`` is a 200 that still carries an
image, a blurred one: it is a withheld slot here, never delivered. Errors are
``{"id", "name", "errors": [...]}``: 400/422 invalid input, 402 out of credits, 403
``content_moderation``, 429 rate limit (150 requests per 10 s), 5xx.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
)
from imagegw.fastpath import upstream_json
from imagegw.providers.aspect_ratios import RatioChoice
from imagegw.providers.base import MEDIA_TYPES, GeneratedImage, ImageRequest, error_document
from imagegw.providers.dimensions import image_format
from imagegw.providers.fanout import Slot
from imagegw.providers.inputs import image_strength
from imagegw.providers.masks import inpaint_inputs

SD3_ENDPOINT = "sd3"
# The edit service of ``POST {base}/v2beta/stable-image/edit/inpaint``: the same answer and
# errors as the generators.
INPAINT_ENDPOINT = "inpaint"
FILTERED = "CONTENT_FILTERED"
# Stability's published limit is 150 requests in 10 s: a 429 without Retry-After waits that long.
DEFAULT_RETRY_AFTER_SECONDS = 10
MAX_RETRY_AFTER_SECONDS = 120
CONTENT_POLICY_MESSAGE = "Your request was rejected by Stability AI's content moderation."
_AUTH_MESSAGE = (
    "Stability AI rejected the gateway's own API key. This is a problem with the gateway's "
    "configuration, not with your request or key."
)


def form_fields(request: ImageRequest, choice: RatioChoice, endpoint: str) -> dict[str, str]:
    """The text fields of one call. An edit is image-to-image: no aspect ratio (the output
    follows the input image), ``strength`` from the catalog (``upstream_options.image_strength``)
    and, on the sd3 endpoint, ``mode``; the image itself is ``edit_files``."""
    fields = {"prompt": request.prompt, "aspect_ratio": choice.aspect_ratio}
    if request.is_edit:
        del fields["aspect_ratio"]
        if endpoint == SD3_ENDPOINT:
            fields["mode"] = "image-to-image"
        fields["strength"] = image_strength(request.spec)
    if endpoint == SD3_ENDPOINT:
        fields["model"] = request.upstream_model
    if request.negative_prompt:
        fields["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        fields["seed"] = str(request.seed)
    # Stability's default is png, which is also the gateway's: sent either way, to be explicit.
    fields["output_format"] = request.output_format or "png"
    return fields


def edit_files(request: ImageRequest) -> list[tuple[str, str, str, bytes]]:
    """An edit's input image as the ``image`` file part (one image: the catalog's limit)."""
    return [
        ("image", image.filename("image"), image.media_type, image.data) for image in request.images
    ]


def inpaint_fields(request: ImageRequest) -> dict[str, str]:
    """The text fields of an inpainting call: no aspect ratio or strength (the output keeps the
    input's size; the mask says what changes), ``grow_mask`` only when the caller set it."""
    fields = {"prompt": request.prompt}
    if request.negative_prompt:
        fields["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        fields["seed"] = str(request.seed)
    if request.grow_mask is not None:
        fields["grow_mask"] = str(request.grow_mask)
    fields["output_format"] = request.output_format or "png"
    return fields


def inpaint_files(request: ImageRequest) -> list[tuple[str, str, str, bytes]]:
    """The image unchanged and the mask in Stability's convention: a grayscale PNG, white =
    change (``providers.masks``: 255 - OpenAI's alpha, pixel by pixel)."""
    image, mask, media_type = inpaint_inputs(request)
    return [
        ("image", image.filename("image"), image.media_type, image.data),
        ("mask", "mask.png", media_type, mask),
    ]


def parse_answer(content: bytes | bytearray) -> Slot:
    try:
        # Total: deep nesting, NaN and Infinity are a ValueError too.
        payload = upstream_json.parse(content)
    except ValueError as exc:
        raise UpstreamBadResponse("Stability AI answered with a body that is not JSON.") from exc
    if not isinstance(payload, dict):
        raise UpstreamBadResponse("Stability AI answered with something other than an object.")
    reason = payload.get("finish_reason")
    if reason == FILTERED:
        # The image is blurred by the filter: withheld, never delivered.
        return Slot(None, filter_reason=FILTERED)
    if reason != "SUCCESS":
        raise UpstreamBadResponse(
            f"Stability AI answered with an unknown finish_reason ({str(reason)[:40]})."
        )
    image = payload.get("image")
    if not isinstance(image, str):
        raise UpstreamBadResponse("Stability AI answered without an image.")
    kind = image_format(image)
    if kind is None:
        raise UpstreamBadResponse("Stability AI answered with data that is not an image.")
    seed = payload.get("seed")
    return Slot(
        GeneratedImage.from_upstream_b64(image, media_type=MEDIA_TYPES[kind]),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
    )


def translate_error(
    status: int, content: bytes | bytearray, headers: Mapping[str, str]
) -> GatewayError:
    document = _error_document(content)
    name = document.get("name") if isinstance(document.get("name"), str) else ""
    errors = document.get("errors")
    details = "; ".join(str(item)[:300] for item in errors[:5]) if isinstance(errors, list) else ""
    if status == 403 and "moderation" in str(name):
        return ContentPolicyViolation(CONTENT_POLICY_MESSAGE, code="content_policy_violation")
    if status in (400, 413, 422):
        return InvalidRequest(
            f"Stability AI rejected the request: {details or name or f'HTTP {status}'}",
            code="invalid_request",
        )
    if status in (401, 403):
        return UpstreamAuthFailed(_AUTH_MESSAGE)
    if status == 402:
        return ServiceUnavailable(
            "The gateway's Stability AI account is out of credits.",
            code="upstream_quota_exhausted",
        )
    if status == 404:
        return ModelUnavailable("Stability AI does not serve this model (any more).", param="model")
    if status == 429:
        asked = _seconds(headers.get("retry-after"))
        seconds = (
            DEFAULT_RETRY_AFTER_SECONDS
            if asked is None
            else min(MAX_RETRY_AFTER_SECONDS, max(1, math.ceil(asked)))
        )
        return RateLimited(
            f"Stability AI is rate-limiting the gateway's requests. Retry after {seconds} seconds.",
            headers={"retry-after": str(seconds)},
            retry_after=asked,
        )
    return UpstreamError(f"Stability AI failed (HTTP {status}).")


def _error_document(content: bytes | bytearray) -> dict[str, Any]:
    # Not JSON is {}; nested too deeply is a 502 like every provider's (providers/base.py).
    document = error_document(content, upstream="Stability AI")
    return document if isinstance(document, dict) else {}


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds > 0 else None
