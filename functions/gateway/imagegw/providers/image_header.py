"""What an image file is and how large, read from its first bytes (PNG, JPEG, WebP).

Upstreams that hand over files (Google's inline data, BFL's download links) do not always say
what they produced, and have been seen to produce another size than asked: the caller is told
what the bytes say. Only the header is read, never the megabytes behind it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Enough for a PNG (24 bytes) and for a JPEG's frame header behind its metadata segments.
HEADER_BYTES = 64 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carry the dimensions; C4, C8 and CC are other segments.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


@dataclass(frozen=True)
class ImageHeader:
    media_type: str
    width: int | None  # None: the type is known but its size could not be read
    height: int | None

    @property
    def size(self) -> str | None:
        if self.width is None or self.height is None:
            return None
        return f"{self.width}x{self.height}"


def read_header(data: bytes) -> ImageHeader | None:
    """The type (and size) of a PNG, JPEG or WebP file; None for anything else."""
    head = data[:HEADER_BYTES]
    if head.startswith(_PNG_SIGNATURE):
        if head[12:16] == b"IHDR" and len(head) >= 24:
            width, height = struct.unpack(">II", head[16:24])
            return ImageHeader("image/png", int(width), int(height))
        return ImageHeader("image/png", None, None)
    if head.startswith(b"\xff\xd8\xff"):
        found = _jpeg(head)
        return ImageHeader("image/jpeg", *(found or (None, None)))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        found = _webp(head)
        return ImageHeader("image/webp", *(found or (None, None)))
    return None


def dimensions(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG (the first bytes suffice), else None."""
    header = read_header(head)
    if header is None or header.media_type == "image/webp":
        return None
    if header.width is None or header.height is None:
        return None
    return header.width, header.height


def _jpeg(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte before a marker
            index += 1
            continue
        if marker in _JPEG_STANDALONE:
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if marker in _JPEG_FRAMES:
            if index + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return int(width), int(height)
        index += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width & 0x3FFF), int(height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None
