"""An edit request as it arrived, independent of its encoding (multipart form or JSON).

The HTTP layer turns either body into an ``EditSubmission``: the scalar parameters, typed, and
each input image as the caller gave it (``ImageSource``: bytes, an ``image_url`` or a
``file_id``). Nothing here is trusted yet: ``generation.edits`` checks the parameters against the
model and turns the sources into checked ``InputImage``s.

``ImageEditRequest`` is the generation request plus what only edits have. Being one, it passes
through validation, Idempotency-Key and limits unchanged; ``inputs`` holds the SHA-256 of each
input image (and of the mask), so that a repeated Idempotency-Key with other images is a
different request, while the bytes themselves never enter a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import StrictStr

from imagegw.schemas import ImageGenerationRequest

# The scalar parameters of an edit (OpenAI's CreateImageEditRequest and EditImageBodyJsonParam,
# minus what this gateway does not serve: markup, svg, GIF frames). Images are not listed here.
EDIT_PARAMETERS = (
    "prompt",
    "model",
    "n",
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "input_fidelity",
    "response_format",
    "user",
    "safety_identifier",
    "complexity",
    "stream",
    "partial_images",
)
INTEGER_PARAMETERS = frozenset({"n", "output_compression", "partial_images"})
BOOLEAN_PARAMETERS = frozenset({"stream"})
MAX_INPUT_IMAGES = 16  # OpenAI's limit; a model's own may be lower (catalog: max_input_images)


class ImageEditRequest(ImageGenerationRequest):
    input_fidelity: StrictStr | None = None
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageSource:
    """One input as the caller gave it; exactly one of ``data``, ``image_url``, ``file_id``."""

    param: str  # where it was given, for error messages: "image", "image[1]", "images[0]", "mask"
    data: bytes | None = field(default=None, repr=False)
    image_url: str | None = field(default=None, repr=False)  # may hold a signature or data: URL
    file_id: str | None = None

    def __post_init__(self) -> None:
        given = [value for value in (self.data, self.image_url, self.file_id) if value is not None]
        if len(given) != 1:
            raise ValueError("an image source has exactly one of data, image_url, file_id")


@dataclass(frozen=True)
class EditSubmission:
    fields: dict[str, Any]  # scalar parameters the caller set, typed as JSON would type them
    images: tuple[ImageSource, ...]
    mask: ImageSource | None = None
    encoding: str = "multipart"  # or "json": only for messages and logs
