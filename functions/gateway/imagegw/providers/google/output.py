"""What both Google APIs answer with, turned into the gateway's images and resolved settings."""

from __future__ import annotations

import re

from imagegw.errors import UpstreamBadResponse
from imagegw.providers.base import MEDIA_TYPES, GeneratedImage
from imagegw.providers.dimensions import dimensions
from imagegw.providers.google.sizes import SizeChoice

_FORMATS = {media_type: name for name, media_type in MEDIA_TYPES.items()}
_WORD = re.compile(r"\w{3,}")
# Share of the prompt's words a text must keep to count as a rewrite of it, not a remark.
_REWRITE_OVERLAP = 0.6


def image(b64: object, media_type: object, *, revised_prompt: str | None) -> GeneratedImage:
    if not isinstance(b64, str):
        raise UpstreamBadResponse("Google answered with an image that has no data.")
    kind = media_type if isinstance(media_type, str) and media_type in _FORMATS else None
    if kind is None:
        raise UpstreamBadResponse(
            f"Google answered with an image of an unknown type ({str(media_type)[:40]})."
        )
    return GeneratedImage.from_upstream_b64(b64, media_type=kind, revised_prompt=revised_prompt)


def output_format(images: list[GeneratedImage]) -> str | None:
    return _FORMATS.get(images[0].media_type) if images else None


def resolved_size(images: list[GeneratedImage], choice: SizeChoice) -> str:
    """The size of what came back (read from the image), else the size Google documents."""
    if images:
        found = dimensions(images[0].b64())
        if found is not None:
            return f"{found[0]}x{found[1]}"
    return choice.native


def rewritten_prompt(text: str | None, prompt: str) -> str | None:
    """``text`` when it is a rewrite of ``prompt``: different, no shorter, keeping its words.

    Imagen returns the prompt its enhancer actually used; the Gemini models may add text that is
    only a remark ("Here is your image"). Neither an echo nor a remark is a revised prompt.
    """
    if text is None:
        return None
    candidate = " ".join(text.split())
    original = " ".join(prompt.split())
    if not candidate or candidate.casefold() == original.casefold():
        return None
    words = set(_WORD.findall(original.casefold()))
    if not words or len(candidate) < len(original):
        return None
    kept = words & set(_WORD.findall(candidate.casefold()))
    return candidate if len(kept) / len(words) >= _REWRITE_OVERLAP else None
