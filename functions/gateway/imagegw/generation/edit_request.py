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

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import StrictStr

from imagegw.errors import (
    InvalidType,
    InvalidValue,
    MissingParameter,
    UnknownParameter,
)
from imagegw.schemas import ImageGenerationRequest, load_json_object

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
    # Extensions of the models that take them (Stability: seed, negative_prompt, grow_mask).
    "seed",
    "negative_prompt",
    "grow_mask",
)
INTEGER_PARAMETERS = frozenset({"n", "output_compression", "partial_images", "seed", "grow_mask"})
BOOLEAN_PARAMETERS = frozenset({"stream"})
MAX_INPUT_IMAGES = 16  # OpenAI's limit; a model's own may be lower (catalog: max_input_images)
MASK_FIELD = "mask"
# The largest image_url accepted in JSON (OpenAI's limit: 20,971,520 characters).
MAX_IMAGE_URL_CHARS = 20_971_520


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


def submission_fingerprint(submission: EditSubmission) -> str:
    """What tells one edit submission from another, as JSON text: the fields, and each input
    by its bytes' digest, its URL's digest (a URL may carry a signature: never kept as is) or
    its file id. An async edit's job keeps it (``Job.submitted``): the same edit sent again
    under its Idempotency-Key finds its job, whatever boundary its multipart body had."""

    def reference(source: ImageSource) -> dict[str, str]:
        if source.data is not None:
            return {"sha256": hashlib.sha256(source.data).hexdigest()}
        if source.image_url is not None:
            return {"url_sha256": hashlib.sha256(source.image_url.encode()).hexdigest()}
        return {"file_id": str(source.file_id)}

    return json.dumps(
        {
            "fields": submission.fields,
            "images": [reference(image) for image in submission.images],
            "mask": None if submission.mask is None else reference(submission.mask),
        },
        sort_keys=True,
    )


# ------------------------------------------------------------------------------------ JSON


def submission_from_json(raw: bytes) -> EditSubmission:
    """The JSON form of an edit (OpenAI's EditImageBodyJsonParam) as an ``EditSubmission``."""
    # Total (schemas.load_json_object): deep nesting, lone surrogates, integers of thousands
    # of digits, NaN and Infinity are 400s naming their field, never a 500.
    document = load_json_object(raw)
    fields: dict[str, Any] = {}
    images: list[ImageSource] = []
    mask: ImageSource | None = None
    for name, value in document.items():
        if value is None:
            continue  # null means "not given", as everywhere in the OpenAI API
        if name == "images":
            if not isinstance(value, list):
                raise InvalidType(
                    "Invalid type for 'images': expected an array of image references.",
                    param="images",
                )
            if len(value) > MAX_INPUT_IMAGES:
                raise InvalidValue(
                    f"Too many images: at most {MAX_INPUT_IMAGES} may be edited together.",
                    param="images",
                )
            images = [_reference(item, f"images[{index}]") for index, item in enumerate(value)]
        elif name == MASK_FIELD:
            mask = _reference(value, MASK_FIELD)
        elif name in EDIT_PARAMETERS:
            fields[name] = value
        elif name == "image":
            raise UnknownParameter(
                "Unknown parameter: 'image'. In a JSON body the input images are "
                '\'images\': [{"image_url": ...} or {"file_id": ...}]; files go in a '
                "multipart/form-data body.",
                param="image",
            )
        else:
            raise unknown_parameter(name)
    if not images:
        raise MissingParameter(
            "Missing required parameter: 'images' (1 to 16 references, each "
            '{"image_url": ...} or {"file_id": ...}).',
            param="images",
        )
    return EditSubmission(fields, tuple(images), mask, encoding="json")


def _reference(item: object, param: str) -> ImageSource:
    shape = 'an object with exactly one of "image_url" or "file_id"'
    if not isinstance(item, dict):
        raise InvalidType(f"Invalid type for '{param}': expected {shape}.", param=param)
    given = {key: value for key, value in item.items() if value is not None}
    unknown = sorted(set(given) - {"image_url", "file_id"})
    if unknown:
        raise UnknownParameter(
            f"Unknown parameter: '{param}.{unknown[0]}'. An image reference is {shape}.",
            param=f"{param}.{unknown[0]}",
        )
    if len(given) != 1:
        raise InvalidValue(f"Invalid '{param}': expected {shape}.", param=param)
    ((key, value),) = given.items()
    if not isinstance(value, str) or not value:
        raise InvalidType(
            f"Invalid type for '{param}.{key}': expected a non-empty string.",
            param=f"{param}.{key}",
        )
    if key == "image_url":
        if len(value) > MAX_IMAGE_URL_CHARS:
            raise InvalidValue(
                f"Invalid '{param}.image_url': longer than {MAX_IMAGE_URL_CHARS} characters.",
                param=f"{param}.image_url",
            )
        return ImageSource(param=param, image_url=value)
    return ImageSource(param=param, file_id=value)


def unknown_parameter(name: str) -> UnknownParameter:
    shown = name if len(name) <= 60 else name[:60] + "..."
    return UnknownParameter(
        f"Unknown parameter: '{shown}'. An edit takes: image or image[] (files), mask, "
        f"{', '.join(EDIT_PARAMETERS)}.",
        param=shown,
    )
