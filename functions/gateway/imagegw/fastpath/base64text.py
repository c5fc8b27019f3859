"""Base64 text held as ASCII bytes, checked once to be something every decoder accepts.

Images arrive from upstreams as base64 inside JSON and usually leave the same way. Holding them as
``bytes`` (not ``str``) lets the upstream answer's bytes be passed through to the response
without building a 2 MB string per image and encoding it again, and the check that it is base64
happens once, where it comes in.
"""

from __future__ import annotations

import binascii

_ALPHABET_AND_PAD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_PAD = 0x3D  # "="
_SCAN_BYTES = 256 * 1024


def is_base64(data: bytes | bytearray) -> bool:
    """True for standard base64 (RFC 4648 section 4) that strict decoders accept.

    The alphabet only (no whitespace, no URL-safe characters), a length that is a positive
    multiple of 4, and ``=`` only as one or two final padding characters.
    """
    return bool(data) and padded(data, 0, len(data)) and not outside_alphabet(data)


def padded(data: bytes | bytearray, start: int, end: int) -> bool:
    """The length and padding rules of ``is_base64`` for ``data[start:end]`` (not copied)."""
    if (end - start) % 4:
        return False
    pad = data.find(b"=", start, end)
    return pad == -1 or (pad >= end - 2 and data[end - 1] == _PAD)


def outside_alphabet(data: bytes | bytearray) -> int:
    """How many bytes of ``data`` are not base64 characters (``=`` included in these).

    ``bytes.translate`` with a delete set is the fastest scan the standard library has (a
    regular expression or ``binascii`` in strict mode are 4 to 6 times slower). It runs on
    copies of 256 KiB pieces: ``bytearray.translate`` is twice as slow as ``bytes.translate``
    (CPython 3.11), and a piece's copy and scan stay in the cache, while one call on 2 MB
    allocates a 2 MB result first. 0.76 ms for 2 MB, against 1.06 ms (bytes, one call) and
    1.89 ms (bytearray, one call).
    """
    with memoryview(data) as view:
        return sum(
            len(bytes(view[start : start + _SCAN_BYTES]).translate(None, _ALPHABET_AND_PAD))
            for start in range(0, len(view), _SCAN_BYTES)
        )


class AlphabetCensus:
    """How many bytes outside the base64 alphabet an answer has, counted piece by piece as it
    arrives (``http_pool.read_body``).

    ``upstream_json.loads`` needs that count for the whole answer to know its images are base64
    (``_all_in_alphabet``). Counted on the pieces the connection delivers, the scan needs no
    copy of its own (``outside_alphabet`` copies 256 KiB pieces of the answer to scan them),
    reads bytes that are still in the cache, and runs while the rest of the answer is on its
    way instead of after it (bench/RESULTS.md, round 7).
    """

    __slots__ = ("outside",)

    def __init__(self) -> None:
        self.outside = 0

    def add(self, piece: bytes) -> None:
        self.outside += len(piece.translate(None, _ALPHABET_AND_PAD))


class Base64Text:
    """Base64 that passed ``is_base64``, as ASCII bytes (``ascii``: bytes or a view of them)."""

    __slots__ = ("ascii",)

    def __init__(self, ascii_bytes: bytes) -> None:
        if not is_base64(ascii_bytes):
            raise ValueError("not base64")
        self.ascii: bytes | memoryview = ascii_bytes

    @classmethod
    def from_str(cls, text: str) -> Base64Text:
        if not text.isascii():
            raise ValueError("not base64")
        return cls(text.encode("ascii"))

    @classmethod
    def encode(cls, data: bytes) -> Base64Text:
        """The base64 of ``data``: right by construction, so not scanned again."""
        return cls.from_checked(binascii.b2a_base64(data, newline=False))

    @classmethod
    def from_checked(cls, view: bytes | memoryview) -> Base64Text:
        """A view of bytes the caller has checked against ``is_base64``'s rules (not copied)."""
        text = cls.__new__(cls)
        text.ascii = view
        return text

    def __str__(self) -> str:
        return str(self.ascii, "ascii")

    def __len__(self) -> int:
        return len(self.ascii)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Base64Text) and other.ascii == self.ascii

    def __hash__(self) -> int:
        return hash(bytes(self.ascii))

    def __repr__(self) -> str:
        # Never the image itself: reprs end up in logs and assertion messages.
        return f"Base64Text(<{len(self.ascii)} characters>)"
