"""The Gemini image models through ``:generateContent``: one call's body and its answer.

These models return one image per call (``candidateCount`` > 1 is refused), so the provider
makes ``n`` calls; this module only knows one. The image is whichever candidate part carries
``inlineData`` and is not a thought; text parts are remarks unless they rewrite the prompt.
A blocked prompt or image is a 200 without an image, marked by ``promptFeedback.blockReason``
or the candidate's ``finishReason`` (shared/reference/providers.md §1.5).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import imagegw.providers.google.output as output
from imagegw.errors import InvalidRequest, UpstreamBadResponse
from imagegw.providers.base import GeneratedImage, ImageRequest, upstream_text
from imagegw.providers.google.sizes import SizeChoice

# finishReason values that mean "withheld by a safety or policy filter" (python-genai
# FinishReason). NO_IMAGE, IMAGE_OTHER, OTHER, STOP without an image: a failure, not a filter.
SAFETY_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
    }
)


@dataclass(frozen=True)
class CallOutcome:
    """One call's result: an image, or a filtered slot. Failures are raised instead."""

    image: GeneratedImage | None
    usage: dict[str, int]

    @property
    def filtered(self) -> bool:
        return self.image is None


def content_body(request: ImageRequest, choice: SizeChoice) -> dict[str, Any]:
    """One call's body. An edit's input images go first, as inline parts, then the prompt
    (Google's order for "edit this image": the instruction refers to the images before it)."""
    image_config: dict[str, Any] = {"aspectRatio": choice.aspect_ratio}
    if choice.tier is not None:
        image_config["imageSize"] = choice.tier
    if request.mask is not None:
        # The catalog marks these models maskless, so validation refuses a mask first.
        raise InvalidRequest("Gemini image models take no mask.", param="mask")
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": image.media_type, "data": _b64(image.data)}}
        for image in request.images
    ]
    parts.append({"text": request.prompt})
    generation_config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
    if request.is_edit and request.size is None:
        # No size asked: Gemini keeps the input image's aspect ratio, as an edit should.
        image_config.pop("aspectRatio")
    if image_config:
        generation_config["imageConfig"] = image_config
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": generation_config}


def parse_content(payload: Any, request: ImageRequest) -> CallOutcome:
    if not isinstance(payload, dict):
        raise UpstreamBadResponse("Google answered with something other than a JSON object.")
    usage = _usage(payload.get("usageMetadata"))
    feedback = payload.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        return CallOutcome(None, usage)
    candidates = payload.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise UpstreamBadResponse("Google answered without a candidate.")
    candidate = candidates[0]
    if not isinstance(candidate, dict):
        raise UpstreamBadResponse("Google answered with a candidate that is not an object.")
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    found: tuple[object, object] | None = None
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought") is True:
            continue  # interim "thinking" parts, image or text, are not the answer
        inline = part.get("inlineData")
        if isinstance(inline, dict) and found is None:
            found = (inline.get("data"), inline.get("mimeType"))
        elif (text := upstream_text(part.get("text"))) is not None:
            texts.append(text)
    if found is not None:
        revised = output.rewritten_prompt(" ".join(texts) if texts else None, request.prompt)
        return CallOutcome(output.image(*found, revised_prompt=revised), usage)
    reason = candidate.get("finishReason")
    if reason in SAFETY_FINISH_REASONS:
        return CallOutcome(None, usage)
    raise UpstreamBadResponse(f"Google answered without an image (finishReason {reason}).")


def _usage(metadata: object) -> dict[str, int]:
    if not isinstance(metadata, dict):
        return {}
    fields = {
        "input_tokens": metadata.get("promptTokenCount"),
        "output_tokens": metadata.get("candidatesTokenCount"),
        "total_tokens": metadata.get("totalTokenCount"),
    }
    return {name: value for name, value in fields.items() if isinstance(value, int)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
