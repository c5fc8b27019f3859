"""The provider contract: one async method in, a typed result out.

A provider turns an ``ImageRequest`` (already validated against the model's capabilities) into an
``ImageResult``. It raises ``GatewayError`` subclasses for every failure, translating upstream
failures by status and structured code, and never raises an HTTP exception.
"""

from __future__ import annotations

import binascii
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from imagegw.catalog import ModelSpec
from imagegw.errors import UpstreamBadResponse
from imagegw.fastpath.base64text import Base64Text

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


# The OpenAI request parameters an ImageRequest carries besides prompt and n. Output parameters
# decide what the images are; identity parameters only tell the upstream who asked.
OUTPUT_PARAMETERS = (
    "size",
    "quality",
    "style",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "complexity",
)
IDENTITY_PARAMETERS = ("user", "safety_identifier")
OPENAI_PARAMETERS = OUTPUT_PARAMETERS + IDENTITY_PARAMETERS
# Documented extensions beyond OpenAI's contract, accepted only by models whose catalog entry lists
# them (Imagen's watermark and person-generation settings).
EXTENSION_PARAMETERS = ("watermark", "person_generation")


@dataclass(frozen=True)
class ImageRequest:
    """A validated generation request. ``None`` means "not given: the upstream decides"."""

    spec: ModelSpec
    upstream_model: str
    prompt: str
    n: int
    timeout_seconds: float
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    moderation: str | None = None
    user: str | None = None
    safety_identifier: str | None = None
    complexity: str | None = None
    watermark: bool | None = None
    person_generation: str | None = None


class GeneratedImage:
    """One image, held as base64 or bytes and converted only when the other form is needed.

    Upstreams send base64 and ``b64_json`` callers want base64: passing it through untouched
    avoids decoding and re-encoding megabytes per image. The base64 is ``Base64Text`` (ASCII
    bytes, checked once where it came in), so the response writer splices it in as it is.
    """

    __slots__ = ("_b64", "_data", "media_type", "revised_prompt")

    def __init__(
        self,
        *,
        media_type: str,
        b64: Base64Text | None = None,
        data: bytes | None = None,
        revised_prompt: str | None = None,
    ) -> None:
        if (b64 is None) == (data is None):
            raise ValueError("give exactly one of b64 or data")
        self._b64 = b64
        self._data = data
        self.media_type = media_type
        self.revised_prompt = revised_prompt

    @classmethod
    def from_upstream_b64(
        cls, b64: str | Base64Text, *, media_type: str, revised_prompt: str | None = None
    ) -> GeneratedImage:
        """Accept an upstream's base64 once it is known to decode (``base64text.is_base64``)."""
        if isinstance(b64, str):
            try:
                b64 = Base64Text.from_str(b64)
            except ValueError:
                raise UpstreamBadResponse(
                    "The upstream returned an image that is not valid base64."
                ) from None
        return cls(media_type=media_type, b64=b64, revised_prompt=revised_prompt)

    def b64_text(self) -> Base64Text:
        if self._b64 is None:
            assert self._data is not None
            self._b64 = Base64Text.encode(self._data)
        return self._b64

    def b64(self) -> str:
        return str(self.b64_text())

    def data(self) -> bytes:
        if self._data is None:
            assert self._b64 is not None
            # Checked to be base64 when it came in: the lenient decoder is the fast one.
            self._data = binascii.a2b_base64(self._b64.ascii)
        return self._data

    @property
    def extension(self) -> str:
        for extension, media_type in MEDIA_TYPES.items():
            if media_type == self.media_type:
                return extension
        return "bin"


@dataclass
class ImageResult:
    """What a provider delivered. Resolved settings are the ones actually used (never "auto")."""

    images: list[GeneratedImage]
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    usage: dict[str, Any] | None = None
    # Images the upstream withheld (safety filters): reported to the caller, never hidden.
    filtered: int = 0
    # Images asked for that did not arrive for another reason (an upstream call of a fan-out
    # failed or ran out of time) while others were delivered: reported too.
    failed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # The catalog model that served when a fallback replaced the requested one (fallbacks.py).
    served_by: str | None = None


class ImageProvider(ABC):
    """Base of every provider: subclasses implement ``generate``."""

    @abstractmethod
    async def generate(self, request: ImageRequest) -> ImageResult: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers own nothing
        """Release what the provider owns (shared clients are closed by their owner)."""
