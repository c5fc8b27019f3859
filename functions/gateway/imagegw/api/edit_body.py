"""The body of ``POST /v1/images/edits`` in either of OpenAI's encodings, to an ``EditSubmission``.

multipart/form-data (what the OpenAI SDKs send): ``image`` (one file) or ``image[]`` (repeated,
up to 16 files), optional ``mask`` (a file), and each scalar parameter as a text part. Numbers and
booleans arrive as text ("2", "true") and are typed here, strictly: "two" is an ``invalid_type``,
not a default. A parameter given twice, a file where text belongs or text where a file belongs,
and any name the edit does not take are each a 400 naming it.

application/json (OpenAI since 2026-02): ``images: [{"image_url": ...} | {"file_id": ...}]``,
optional ``mask`` of the same shape, and the scalar parameters as JSON values.

The body is read against a byte limit as it streams in (413 before it is all in memory), and the
multipart parser (Starlette's, on python-multipart) spools files over 1 MB to a temporary file.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from imagegw.errors import (
    InvalidType,
    InvalidValue,
    MalformedBody,
    MissingParameter,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from imagegw.fastpath.content_length import declared_length
from imagegw.generation.edit_request import (
    BOOLEAN_PARAMETERS,
    EDIT_PARAMETERS,
    INTEGER_PARAMETERS,
    MAX_INPUT_IMAGES,
    EditSubmission,
    ImageSource,
    submission_from_json,
    unknown_parameter,
)

IMAGE_FIELDS = ("image", "image[]")
MASK_FIELD = "mask"
_INTEGER = re.compile(r"^-?[0-9]{1,9}$")
# Room for every parameter a few times over; a form with more parts is not an edit.
_MAX_FIELDS = 64
# A text part larger than this is not a parameter (prompts are at most 32,000 characters).
_MAX_TEXT_PART_BYTES = 256 * 1024


async def read_edit_submission(request: Request, *, max_body_bytes: int) -> EditSubmission:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    _refuse_declared_oversize(request, max_body_bytes)
    if media_type == "multipart/form-data":
        return await _from_multipart(request, max_body_bytes)
    if media_type == "application/json" or media_type.endswith("+json"):
        raw = b"".join([chunk async for chunk in _limited(request, max_body_bytes)])
        return submission_from_json(raw)
    raise UnsupportedMediaType(
        "Send an edit as multipart/form-data (image files, as the OpenAI SDK does) or as "
        "application/json (images as image_url or file_id references); got Content-Type "
        f"'{content_type or 'none'}'."
    )


# ------------------------------------------------------------------------------------ multipart


async def _from_multipart(request: Request, max_body_bytes: int) -> EditSubmission:
    parser = MultiPartParser(
        request.headers,
        _limited(request, max_body_bytes),
        max_files=MAX_INPUT_IMAGES + 1,
        max_fields=_MAX_FIELDS,
        max_part_size=_MAX_TEXT_PART_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise MalformedBody(
            f"The multipart/form-data body cannot be read: {exc}", code="invalid_multipart"
        ) from exc
    try:
        return await _submission_from_form(form.multi_items())
    finally:
        await form.close()


async def _submission_from_form(items: list[tuple[str, str | UploadFile]]) -> EditSubmission:
    fields: dict[str, Any] = {}
    images: list[ImageSource] = []
    mask: ImageSource | None = None
    for name, value in items:
        if name in IMAGE_FIELDS or name == MASK_FIELD:
            if not isinstance(value, UploadFile):
                raise InvalidType(
                    f"Invalid type for '{name}': expected a file (a multipart part with a "
                    "filename), but got a text value.",
                    param=name,
                )
            if name == MASK_FIELD:
                if mask is not None:
                    raise InvalidValue("Only one 'mask' may be given.", param=MASK_FIELD)
                mask = ImageSource(param=MASK_FIELD, data=await value.read())
                continue
            if len(images) >= MAX_INPUT_IMAGES:
                raise InvalidValue(
                    f"Too many images: at most {MAX_INPUT_IMAGES} may be edited together.",
                    param="image",
                )
            param = "image" if not images else f"image[{len(images)}]"
            images.append(ImageSource(param=param, data=await value.read()))
            continue
        if name not in EDIT_PARAMETERS:
            raise unknown_parameter(name)
        if isinstance(value, UploadFile):
            raise InvalidType(
                f"Invalid type for '{name}': expected a text value, but got a file.", param=name
            )
        if name in fields:
            raise InvalidValue(f"The parameter '{name}' is given more than once.", param=name)
        fields[name] = _typed(name, value)
    if not images:
        raise MissingParameter(
            "Missing required parameter: 'image'. Send one file as 'image' or up to "
            f"{MAX_INPUT_IMAGES} as 'image[]'.",
            param="image",
        )
    return EditSubmission(fields, tuple(images), mask, encoding="multipart")


def _typed(name: str, text: str) -> Any:
    if name in INTEGER_PARAMETERS:
        if not _INTEGER.match(text):
            raise InvalidType(
                f"Invalid type for '{name}': expected an integer, but got '{text[:40]}'.",
                param=name,
            )
        return int(text)
    if name in BOOLEAN_PARAMETERS:
        if text not in ("true", "false"):
            raise InvalidType(
                f"Invalid type for '{name}': expected a boolean ('true' or 'false'), but got "
                f"'{text[:40]}'.",
                param=name,
            )
        return text == "true"
    return text


# ------------------------------------------------------------------------------------ helpers


def _refuse_declared_oversize(request: Request, limit: int) -> None:
    # declared_length: no int() of thousands of digits (Python's 4,300 limit raises).
    declared = declared_length(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise _too_large(limit)


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        yield chunk


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than {limit} bytes. Send large images through "
        "POST /v1/images/uploads and refer to them by file_id in a JSON edit (docs/edits.md).",
    )
