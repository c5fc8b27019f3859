"""The width and height of a PNG or JPEG, read from the first bytes of its base64.

Google does not report the size it produced, and it has been seen to ignore the requested tier
(googleapis/js-genai#1461, #1682): the size the caller is told comes from the image itself. Only
the header is decoded, never the megabytes behind it (``imagegw.providers.image_header``).
"""

from __future__ import annotations

import base64
import binascii

from imagegw.providers import image_header

_PREFIX_CHARS = 4 * (image_header.HEADER_BYTES // 3)


def dimensions(b64: str) -> tuple[int, int] | None:
    """(width, height), or None when the bytes are not a PNG or JPEG header it can read."""
    try:
        head = base64.b64decode(b64[:_PREFIX_CHARS], validate=True)
    except (binascii.Error, ValueError):
        return None
    return image_header.dimensions(head)
