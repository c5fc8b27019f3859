"""Untrusted input images (edits): typed by content, measured before decoding, decoded once.

Nothing the caller says about a file is believed: not its name, not its declared content type.
The steps, cheapest first, each a 4xx naming the parameter:

1. size in bytes, per file and for the request as a whole (413);
2. the format from the first bytes (PNG, JPEG, WebP signatures; anything else is a 400);
3. the dimensions from the header alone, against a pixel budget (a "decompression bomb" is a few
   kilobytes that declare 50,000 x 50,000 pixels: refused before a single pixel is decoded);
4. Pillow's ``verify`` (structure and checksums) and then a full decode, so a truncated or
   corrupt file is refused here instead of failing upstream after the call was paid for.

The bytes are then passed on unchanged (``InputImage``); decoding only proves they are an image.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from imagegw.errors import InvalidImage, PayloadTooLarge
from imagegw.providers.inputs import InputImage

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
ALL_FORMATS = tuple(_PIL_FORMATS)


@dataclass(frozen=True)
class InputLimits:
    max_bytes: int  # one file
    max_total_bytes: int  # every image and the mask of one request
    max_pixels: int  # width x height of one image
    max_images: int = 16


def sniff_format(data: bytes) -> str | None:
    """The format the content says it is, from its signature; None when it is none of ours."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_size(size: int, *, param: str, limits: InputLimits) -> None:
    """Refuse one file above the per-file limit (before reading it whole, when possible)."""
    if size > limits.max_bytes:
        raise PayloadTooLarge(
            f"The file in '{param}' is {size} bytes; each input image may be at most "
            f"{limits.max_bytes} bytes. Larger inputs cannot be edited through this gateway.",
            param=param,
        )


def check_total(sizes: Sequence[int], *, limits: InputLimits) -> None:
    total = sum(sizes)
    if total > limits.max_total_bytes:
        raise PayloadTooLarge(
            f"The input images of this edit are {total} bytes together; at most "
            f"{limits.max_total_bytes} bytes are accepted per request.",
            param="image",
        )


def inspect_image(
    data: bytes,
    *,
    param: str,
    limits: InputLimits,
    formats: Sequence[str] = ALL_FORMATS,
) -> InputImage:
    """``data`` as an ``InputImage`` if it is a sound image of an accepted format and size.

    CPU-bound (it decodes): call it off the event loop.
    """
    check_size(len(data), param=param, limits=limits)
    kind = sniff_format(data)
    if kind is None or kind not in formats:
        found = f"a {kind.upper()} image" if kind else "not an image the gateway recognizes"
        raise InvalidImage(
            f"Invalid file in '{param}': it is {found}. Supported formats: "
            f"{', '.join(name.upper() for name in formats)} (judged by the file's content, not "
            "its name or declared type).",
            param=param,
            code="invalid_image_format",
        )
    from PIL import Image, UnidentifiedImageError

    pil_format = _PIL_FORMATS[kind]
    unreadable = InvalidImage(
        f"Invalid file in '{param}': it starts like a {kind.upper()} image but cannot be read "
        "as one (truncated or corrupt).",
        param=param,
    )
    try:
        with Image.open(io.BytesIO(data), formats=[pil_format]) as image:
            width, height = image.size  # from the header: nothing decoded yet
            _check_pixels(width, height, param=param, limits=limits)
            image.verify()
        with Image.open(io.BytesIO(data), formats=[pil_format]) as image:
            image.load()
            has_alpha = _has_alpha(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (89 MP) sits above ours; kept for a header that lies.
        raise _too_many_pixels(param, limits, detail="") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow's decoders report corrupt data with all of these (SyntaxError: broken PNG).
        raise unreadable from exc
    if (width, height) != image.size:
        raise unreadable
    return InputImage(data=data, format=kind, width=width, height=height, has_alpha=has_alpha)


def check_mask(mask: InputImage, first: InputImage) -> None:
    """OpenAI's rules: a PNG with an alpha channel, the size of the first image."""
    if mask.format != "png" or not mask.has_alpha:
        raise InvalidImage(
            "Invalid 'mask': it must be a PNG with an alpha channel (fully transparent pixels "
            f"mark the area to edit); got a {mask.format.upper()} image "
            f"{'with' if mask.has_alpha else 'without'} transparency.",
            param="mask",
            code="invalid_mask",
        )
    if (mask.width, mask.height) != (first.width, first.height):
        raise InvalidImage(
            f"Invalid 'mask': it is {mask.width}x{mask.height} but the first image is "
            f"{first.width}x{first.height}; the mask must have the same size as the image it "
            "applies to.",
            param="mask",
            code="invalid_mask",
        )


def _check_pixels(width: int, height: int, *, param: str, limits: InputLimits) -> None:
    if width < 1 or height < 1 or width * height > limits.max_pixels:
        raise _too_many_pixels(param, limits, detail=f" It declares {width}x{height}.")


def _too_many_pixels(param: str, limits: InputLimits, *, detail: str) -> InvalidImage:
    return InvalidImage(
        f"Invalid file in '{param}': the image has too many pixels to be decoded safely.{detail} "
        f"At most {limits.max_pixels:,} pixels (width x height) are accepted.",
        param=param,
        code="image_too_large",
    )


def _has_alpha(image: object) -> bool:
    from PIL import Image

    assert isinstance(image, Image.Image)
    if image.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        return True
    return image.mode in ("P", "L", "RGB", "1") and "transparency" in image.info
