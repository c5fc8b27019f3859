"""An upstream's JSON answer parsed with its images left as bytes, not 2 MB strings.

``json.loads`` of an OpenAI images answer spends nearly all its time on the ``b64_json``
strings: it scans every character for quotes, escapes and control characters and builds a
2 MB ``str`` per image, which the response writer then checks and encodes back to bytes.
``loads`` finds each ``"b64_json": "..."`` value in the raw bytes instead (``bytes.find``),
checks it is base64 (``Base64Text``), and parses a skeleton in which each such value
is replaced by a marker; the markers in the parsed ``data`` items become ``Base64Text``
holding a view of the image's bytes in ``content`` (no copy: the response writer copies them
once, into the response).

Never wrong, only sometimes not faster: a value is cut out only if its bytes run to the next
``"`` without a backslash and are base64. If the cut was where the scan thought (the quote
before it opens a string), the skeleton parses to exactly the marker there; the prefix before
each cut is the same bytes in both documents, so if the marker parses as a whole string the
original string was exactly the cut bytes. Every marker must then be found as the
``b64_json`` of a ``data`` item, once; otherwise (a key inside a string, escapes, duplicate
keys, a ``b64_json`` elsewhere, invalid JSON) the answer is parsed again with ``json.loads``,
which also raises what it always raised.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from typing import Any

from imagegw.fastpath.base64text import Base64Text, outside_alphabet, padded

# JSON whitespace only (json.loads accepts no other); the value's opening quote included.
_B64_KEY = re.compile(rb'"b64_json"[ \t\n\r]*:[ \t\n\r]*"')
# Shorter values are not worth the detour (json.loads is as fast), and images never are.
MIN_CUT_BYTES = 1024


def loads(content: bytes | bytearray, *, outside: int | None = None) -> Any:
    """``json.loads(content)``, with ``data[i]["b64_json"]`` as ``Base64Text`` where it is base64.

    ``outside``: how many bytes of ``content`` are outside the base64 alphabet, when the reader
    counted them as the answer arrived (``base64text.AlphabetCensus``); else they are counted
    here.

    Total: raises ``ValueError`` for anything that is not plain JSON (``json.JSONDecodeError``,
    ``UnicodeDecodeError``, ``NestedTooDeeply`` where ``json.loads`` would hit the recursion
    limit, ``NotAJsonNumber`` for NaN, Infinity and numbers beyond the float range), and
    nothing else.
    """
    if json.detect_encoding(content) != "utf-8":
        return _plain(content)
    spans = _candidate_spans(content)
    if not spans:
        return _plain(content)
    # The images stay views of ``content``: no copy of megabytes of base64 per image.
    view = memoryview(content)
    if _all_in_alphabet(content, spans, outside):
        images = [Base64Text.from_checked(view[start:end]) for start, end in spans]
    else:
        # Some value has a byte base64 does not (a backslash, an escape, a space): check each,
        # and leave those out for json.loads and the provider to judge.
        kept = [(start, end) for start, end in spans if not outside_alphabet(content[start:end])]
        images = [Base64Text.from_checked(view[start:end]) for start, end in kept]
        spans = kept
        if not spans:
            return _plain(content)
    # A fresh random marker per call: no upstream text can contain it by chance.
    marker = f"imagegw-cut-{secrets.token_hex(16)}-"
    pieces: list[bytes | bytearray] = []
    position = 0
    for index, (start, end) in enumerate(spans):
        pieces += (content[position:start], f"{marker}{index}".encode("ascii"))
        position = end
    pieces.append(content[position:])
    skeleton = b"".join(pieces)
    del pieces
    try:
        document = json.loads(skeleton, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError):
        return _plain(content)
    if not _restore(document, marker, images):
        return _plain(content)
    return document


def _candidate_spans(content: bytes | bytearray) -> list[tuple[int, int]]:
    """Where the long string values of ``"b64_json"`` keys seem to be, shaped like base64.

    Each runs from the opening quote to the next ``"``: base64 has no escapes, so a value with a
    backslash ends elsewhere, which the check of its bytes and the parse of the skeleton catch.
    """
    spans = []
    search_from = 0
    while (found := _B64_KEY.search(content, search_from)) is not None:
        start = found.end()
        end = content.find(b'"', start)
        if end < 0:
            break
        if end - start >= MIN_CUT_BYTES and padded(content, start, end):
            spans.append((start, end))
        # Images are never searched through: the next key is after this value.
        search_from = end + 1
    return spans


def _all_in_alphabet(
    content: bytes | bytearray, spans: list[tuple[int, int]], outside: int | None
) -> bool:
    """True when no span has a byte outside the base64 alphabet, without copying any span.

    One scan of the whole answer counts the bytes outside the alphabet (or ``outside``, counted
    as it arrived); the parts between the spans (small: the JSON around the images) are counted
    alone; equal counts mean the spans hold none.
    """
    around = 0
    position = 0
    for start, end in spans:
        around += outside_alphabet(content[position:start])
        position = end
    around += outside_alphabet(content[position:])
    return (outside_alphabet(content) if outside is None else outside) == around


def _restore(document: Any, marker: str, images: list[Base64Text]) -> bool:
    """Put the images back where their markers are; False unless each is a data item's, in order."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        return False
    restored = 0
    for item in document["data"]:
        value = item.get("b64_json") if isinstance(item, dict) else None
        if not isinstance(value, str) or not value.startswith(marker):
            continue
        if restored == len(images) or value != f"{marker}{restored}":
            return False
        item["b64_json"] = images[restored]
        restored += 1
    return restored == len(images)


class NestedTooDeeply(ValueError):
    """The JSON nests deeper than the parser's recursion limit: hostile, never an answer."""


class NotAJsonNumber(ValueError):
    """NaN, Infinity or a number beyond the float range: not JSON, and not re-encodable."""


def _no_constant(text: str) -> Any:
    raise NotAJsonNumber(f"{text} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotAJsonNumber(f"{text[:20]} does not fit a double")
    return number


def parse(content: bytes | bytearray | str) -> Any:
    """``json.loads`` made total in the way ``loads`` is (for bodies without images)."""
    try:
        return json.loads(content, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        # json recurses once per nesting level; 100,000 "[" from an upstream is not a 500.
        raise NestedTooDeeply("the JSON nests too deeply") from None


def _plain(content: bytes | bytearray) -> Any:
    return parse(content)
