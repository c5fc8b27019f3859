"""Type and size of PNG, JPEG and WebP files from their first bytes (real files from Pillow)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from imagegw.providers.image_header import dimensions, read_header


def _encode(size: tuple[int, int], kind: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    mode = "RGBA" if options.pop("alpha", False) else "RGB"
    Image.new(mode, size, (10, 200, 30)).save(buffer, kind, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "media_type", "options"),
    [
        ("PNG", "image/png", {}),
        ("JPEG", "image/jpeg", {"quality": 80}),
        ("JPEG", "image/jpeg", {"progressive": True, "exif": b"Exif\x00\x00" + b"\x00" * 64}),
        ("WEBP", "image/webp", {"lossless": True}),
        ("WEBP", "image/webp", {"quality": 70}),
        ("WEBP", "image/webp", {"alpha": True, "quality": 70}),
    ],
)
def test_reads_type_and_size(kind: str, media_type: str, options: dict[str, object]) -> None:
    header = read_header(_encode((1216, 832), kind, **options))
    assert header is not None
    assert header.media_type == media_type
    assert header.size == "1216x832"


@pytest.mark.parametrize(
    "data",
    [b"", b"<html>not an image</html>", b"GIF89a" + b"\x00" * 40, b"RIFF\x00\x00\x00\x00WAVE"],
)
def test_anything_else_is_not_an_image(data: bytes) -> None:
    assert read_header(data) is None


def test_a_truncated_header_keeps_the_type_without_a_size() -> None:
    header = read_header(_encode((64, 64), "PNG")[:12])
    assert header is not None
    assert header.media_type == "image/png"
    assert header.size is None


def test_dimensions_reads_png_and_jpeg_only() -> None:
    assert dimensions(_encode((640, 480), "PNG")) == (640, 480)
    assert dimensions(_encode((640, 480), "JPEG")) == (640, 480)
    assert dimensions(_encode((640, 480), "WEBP")) is None
