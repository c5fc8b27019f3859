"""Input images for edit tests: real files drawn by Pillow, and hostile ones made by hand."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def encoded(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def solid(
    width: int = 64,
    height: int = 48,
    colour: tuple[int, ...] = (200, 30, 30),
    image_format: str = "PNG",
    mode: str = "RGB",
) -> bytes:
    return encoded(Image.new(mode, (width, height), colour), image_format)


def gradient(width: int = 64, height: int = 48) -> bytes:
    """A PNG whose every pixel differs from its neighbours (for pixel-exact comparisons)."""
    image = Image.new("RGB", (width, height))
    image.putdata(
        [(x * 3 % 256, y * 5 % 256, (x + y) % 256) for y in range(height) for x in range(width)]
    )
    return encoded(image)


def noise(width: int = 64, height: int = 48, *, seed: int = 1) -> bytes:
    """A PNG of seeded random pixels: it does not compress, so its size is about 3 x pixels."""
    import random

    pixels = random.Random(seed).randbytes(width * height * 3)  # noqa: S311 - test pixels
    return encoded(Image.frombytes("RGB", (width, height), pixels))


def alpha_mask(width: int = 64, height: int = 48, *, change: tuple[int, int, int, int]) -> bytes:
    """OpenAI's mask: opaque (keep) everywhere but the ``change`` box (left, top, right,
    bottom), which is fully transparent."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    image.paste((0, 0, 0, 0), change)
    return encoded(image)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header declares ``width`` x ``height`` (a "bomb"): the
    pixel data is one zlib stream of a few bytes, far too short for what it declares."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )
