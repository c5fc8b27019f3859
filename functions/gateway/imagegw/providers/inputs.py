"""Input images of an edit, as providers receive them: checked bytes, never re-encoded.

An ``InputImage`` is only ever built by the gateway's own inspection of untrusted bytes
(``imagegw.generation.input_images``): by the time a provider sees one, its format was read from
its content, its dimensions were decoded within limits and the whole image decoded once. The
bytes are the caller's, unchanged, so an upstream receives exactly what was sent.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from imagegw.catalog import ModelSpec
from imagegw.errors import ProviderNotConfigured

if TYPE_CHECKING:
    from PIL import Image

# Format name -> the media type sent upstream (and the file name extension).
INPUT_MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True, eq=False)
class InputImage:
    data: bytes
    format: str  # "png" | "jpeg" | "webp", read from the content
    width: int
    height: int
    has_alpha: bool

    @property
    def media_type(self) -> str:
        return INPUT_MEDIA_TYPES[self.format]

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format

    def filename(self, stem: str) -> str:
        """A neutral file name for a multipart upstream: the caller's own names are not sent."""
        return f"{stem}.{self.extension}"

    @cached_property
    def sha256(self) -> str:
        """Identifies the content (Idempotency-Key fingerprints), never the bytes themselves."""
        return hashlib.sha256(self.data).hexdigest()

    def decoded(self) -> Image.Image:
        """The pixels (Pillow imported on first use). Safe: the size was checked on the way in."""
        from PIL import Image

        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image

    def __repr__(self) -> str:  # never the bytes, in a log or a failed assertion
        return (
            f"InputImage({self.format}, {self.width}x{self.height}, {len(self.data)} bytes, "
            f"alpha={self.has_alpha})"
        )


def image_strength(spec: ModelSpec) -> str:
    """How much of the input an image-to-image edit may change (Stability, on its API and on
    Bedrock): the catalog's ``upstream_options.image_strength``, 0 = keep, 1 = ignore it."""
    strength = spec.upstream_option("image_strength")
    if strength is None:
        raise ProviderNotConfigured(
            f"The catalog entry of `{spec.id}` edits but names no upstream_options.image_strength."
        )
    return strength
