"""The generation response as JSON bytes, without pushing megabytes of base64 through json.dumps.

``json.dumps`` inspects every character of every string for escaping; for a 2 MB image that is
about 4.5 ms on a small machine, more than the rest of the gateway's own work, and it builds the
whole text once more before it is encoded. Base64 never needs escaping, so each ``b64_json``
value is spliced into the encoded text as it is: a ``Base64Text`` (checked where it came in, and
already bytes) directly, a string once its bytes are known to be base64 (anything else goes
through json.dumps as before). The bytes are the same as ``json.dumps(plain(body),
ensure_ascii=False).encode("utf-8")``.

The result is one join of the encoded text around the images and the images' bytes (which
``Base64Text`` may hold as views of the upstream answer): each image is copied once, into the
result.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from imagegw.fastpath.base64text import Base64Text

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
# Below this size json.dumps is as fast as the splice.
_SPLICE_MIN_CHARS = 4096


def _spliceable(value: object) -> bytes | memoryview | None:
    """The ASCII bytes to write for ``value`` between quotes, if it needs no json.dumps."""
    if isinstance(value, Base64Text):
        return value.ascii
    if not isinstance(value, str) or len(value) < _SPLICE_MIN_CHARS or not value.isascii():
        return None
    encoded = value.encode("ascii")
    return None if encoded.translate(None, _BASE64_ALPHABET) else encoded


def plain(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with each ``Base64Text`` of its ``data`` items as a string: plain JSON."""
    items = body.get("data")
    if not isinstance(items, list):
        return body
    data = [
        {**item, "b64_json": str(item["b64_json"])}
        if isinstance(item, dict) and isinstance(item.get("b64_json"), Base64Text)
        else item
        for item in items
    ]
    return {**body, "data": data}


def dumps(body: dict[str, Any]) -> bytes:
    """``body`` as UTF-8 JSON (``ensure_ascii=False``), base64 images spliced in unescaped.

    Total: text that is not valid Unicode (a lone surrogate from an upstream's revised prompt)
    is written as JSON's ``\\u`` escape instead of failing the response.
    """
    parts = dump_parts(body)
    # join sizes the result first: each image is copied once, and no buffer grows (a growing
    # one is copied again each time realloc moves it).
    return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)


def dump_parts(body: dict[str, Any]) -> list[bytes | memoryview]:
    """``dumps(body)`` as the pieces it is joined from: the encoded text between the images and
    the images' own bytes (views of the upstream answer where ``Base64Text`` holds them).

    A server that writes the pieces one after the other (``api/json_parts.py``) sends the same
    bytes without copying the images into a response first: a copy per image, and the upstream
    answer and the response no longer both in memory at the peak.
    """
    try:
        return _dump_parts(body)
    except UnicodeEncodeError:
        return [json.dumps(plain(body)).encode("ascii")]


def _dump_parts(body: dict[str, Any]) -> list[bytes | memoryview]:
    items = body.get("data")
    if not isinstance(items, list):
        return [json.dumps(body, ensure_ascii=False).encode("utf-8")]
    # A fresh random marker per call: no prompt or upstream text can contain it by chance.
    marker = f"imagegw-b64-{secrets.token_hex(16)}-"
    spliced: list[bytes | memoryview] = []
    data: list[Any] = []
    for item in items:
        value = _spliceable(item.get("b64_json")) if isinstance(item, dict) else None
        if value is not None:
            data.append({**item, "b64_json": f"{marker}{len(spliced)}"})
            spliced.append(value)
        else:
            data.append(item)
    if not spliced:
        return [json.dumps(body, ensure_ascii=False).encode("utf-8")]
    text = json.dumps({**body, "data": data}, ensure_ascii=False)
    # Text and images alternate: 2n + 1 pieces for n images, the quotes with the text.
    parts: list[bytes | memoryview] = []
    closing = b""
    for index, value in enumerate(spliced):
        before, found, text = text.partition(f'"{marker}{index}"')
        assert found, "every marker is in the text exactly once"
        parts += (closing + before.encode("utf-8") + b'"', value)
        closing = b'"'
    parts.append(closing + text.encode("utf-8"))
    return parts
