"""A ``Content-Length`` read without trusting it: the one parser of peer-declared lengths.

``int()`` of a header value is not total: thousands of digits raise (Python's 4,300-digit
limit), ``"²".isdigit()`` is true and ``int("²")`` raises, and a length of 10**30 is a number
no buffer should ever be sized from. Callers compare the result with their limit; nothing is
ever allocated from it. No imports: the HTTP routes use it at cold start.
"""

from __future__ import annotations

import sys

# More digits than any real length: 10**18 bytes is an exabyte.
_MAX_LENGTH_DIGITS = 18


def declared_length(value: str | None) -> int | None:
    """The declared length as a number (``sys.maxsize`` for absurd ones); None if not digits."""
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    digits = value.lstrip("0") or "0"
    return sys.maxsize if len(digits) > _MAX_LENGTH_DIGITS else int(digits)
