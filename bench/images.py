"""The benchmark image: a real, decodable PNG of 1.5 MB (2 MB of base64) that barely compresses.

Real upstreams send photographs, which deflate hardly shrinks. Noise at 4 bits per channel gives
a 1024x896 PNG of that size at deflate level 1 (fast, so generating it does not slow the run).
The seed is fixed: every run measures the same bytes.
"""

from __future__ import annotations

import io
import random

from PIL import Image

SIZE = "1024x896"


def noise_png(width: int = 1024, height: int = 896, *, bits: int = 4, seed: int = 6) -> bytes:
    """A PNG of random pixels with ``bits`` of entropy per channel (about 1.5 MB by default)."""
    mask = (1 << bits) - 1
    table = bytes((value & mask) << (8 - bits) for value in range(256))
    pixels = random.Random(seed).randbytes(width * height * 3).translate(table)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def tiny_png() -> bytes:
    """A small valid PNG, for runs that measure scheduling rather than bytes."""
    return noise_png(32, 32)
