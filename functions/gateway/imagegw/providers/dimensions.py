"""The type and size of an image held as base64, read from its first bytes (``image_header``).

Google and Stability do not report the size they produced, and Google has been seen to ignore the
requested tier (googleapis/js-genai#1461, #1682): the size the caller is told comes from the image
itself. Only the header is decoded, never the megabytes behind it.
"""

from __future__ import annotations

import base64
import binascii

from imagegw.providers import image_header

_PREFIX_CHARS = 4 * (image_header.HEADER_BYTES // 3)
# 16 characters are 12 bytes: enough for every signature (WebP's RIFF....WEBP is the longest).
_SIGNATURE_CHARS = 16
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


def dimensions(b64: str) -> tuple[int, int] | None:
    """(width, height), or None when the bytes are not a PNG or JPEG header it can read."""
    head = _decoded(b64, _PREFIX_CHARS)
    return image_header.dimensions(head) if head is not None else None


def size(b64: str) -> str | None:
    """ "WxH" of a PNG, JPEG or WebP, or None when it cannot be read."""
    head = _decoded(b64, _PREFIX_CHARS)
    header = image_header.read_header(head) if head is not None else None
    return header.size if header is not None else None


def image_format(b64: str) -> str | None:
    """ "png", "jpeg" or "webp" by the image's first bytes, or None for anything else."""
    head = _decoded(b64, _SIGNATURE_CHARS)
    header = image_header.read_header(head) if head is not None else None
    return _FORMATS.get(header.media_type) if header is not None else None


def _decoded(b64: str, chars: int) -> bytes | None:
    try:
        return base64.b64decode(b64[:chars], validate=True)
    except (binascii.Error, ValueError):
        return None
