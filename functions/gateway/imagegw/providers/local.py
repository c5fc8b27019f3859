"""The offline development provider: draws real images in-process, no key, no network.

Each image is a deterministic abstract picture seeded by model, prompt, size and index, so the
same request gives the same bytes, and different prompts give visibly different images. It is
a stand-in for an upstream during development and tests, not a generative model.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imagegw.providers.base import (
    MEDIA_TYPES,
    GeneratedImage,
    ImageProvider,
    ImageRequest,
    ImageResult,
)

if TYPE_CHECKING:
    import httpx
    from PIL import Image

    from imagegw.settings import Settings

_AUTO_QUALITY = "medium"
_DEFAULT_SIZE = "1024x1024"


def resolved_size(request: ImageRequest) -> str:
    size = request.size or "auto"
    if size != "auto":
        return size
    default = request.spec.default_size
    return default if default and default != "auto" else _DEFAULT_SIZE


def draw(
    prompt: str,
    *,
    seed_text: str,
    width: int,
    height: int,
    output_format: str,
    transparent: bool,
    compression: int | None,
) -> bytes:
    """One image as encoded bytes. Pillow is imported here, on first use, not at startup."""
    image = render(prompt, seed_text=seed_text, width=width, height=height, transparent=transparent)
    return encode(image, output_format, compression)


def render(
    prompt: str, *, seed_text: str, width: int, height: int, transparent: bool
) -> Image.Image:
    """The deterministic picture of ``prompt``, as pixels."""
    from PIL import Image, ImageDraw

    seed = hashlib.sha256(f"{seed_text}\x00{prompt}".encode()).digest()
    first = (seed[0], seed[1], seed[2])
    second = (seed[3], seed[4], seed[5])
    # A two-colour diagonal gradient: drawn tiny, scaled up (cheap even for 4K images).
    gradient = Image.new("RGB", (2, 2))
    gradient.putdata([first, _mix(first, second), _mix(first, second), second])
    mode = "RGBA" if transparent else "RGB"
    if transparent:
        image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    else:
        image = gradient.resize((width, height), Image.Resampling.BILINEAR)
    canvas = ImageDraw.Draw(image, mode)
    unit = min(width, height)
    for shape in range(6):
        b = seed[6 + shape * 4 : 10 + shape * 4]
        cx, cy = b[0] / 255 * width, b[1] / 255 * height
        radius = unit * (0.08 + b[2] / 255 * 0.25)
        colour = (b[3], b[0] ^ b[2], b[1] ^ b[3], 255)
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if shape % 2:
            canvas.ellipse(box, fill=colour)
        else:
            canvas.rectangle(box, fill=colour)
    return image


def encode(image: Image.Image, output_format: str, compression: int | None) -> bytes:
    buffer = io.BytesIO()
    quality = 90 if compression is None else compression  # 0 is a real choice, not "unset"
    if output_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
    elif output_format == "webp":
        image.save(buffer, "WEBP", quality=quality)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _mix(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2, (a[2] + b[2]) // 2)


def edit(
    request: ImageRequest, *, index: int, width: int, height: int, transparent: bool
) -> Image.Image:
    """A real, deterministic edit of the first input image.

    The prompt's picture (``render``) is painted into the area to change: with a mask, exactly
    where it says (strength 255 - alpha: fully transparent pixels are repainted, opaque ones
    kept bit for bit); without one, over the whole image at half strength. Further input
    images are laid in as a row of thumbnails along the top edge, so each one shows.
    """
    from PIL import Image

    from imagegw.providers.masks import change_strength

    mode = "RGBA" if transparent else "RGB"
    base = request.images[0].decoded().convert("RGBA")
    if base.size != (width, height):
        base = base.resize((width, height), Image.Resampling.BILINEAR)
    if request.mask is not None:
        strength = change_strength(request.mask)
        if strength.size != (width, height):
            strength = strength.resize((width, height), Image.Resampling.NEAREST)
    else:
        strength = Image.new("L", (width, height), 128)
    seed_text = f"{request.upstream_model}|edit|{width}x{height}|{index}"
    painted = render(
        request.prompt, seed_text=seed_text, width=width, height=height, transparent=False
    ).convert("RGBA")
    result = Image.composite(painted, base, strength)
    references = request.images[1:]
    if references:
        side = max(1, min(width, height) // max(4, len(references)))
        for position, reference in enumerate(references):
            thumbnail = reference.decoded().convert("RGBA").resize((side, side))
            result.paste(thumbnail, (position * side % width, 0))
    return result.convert(mode)


def edit_size(request: ImageRequest) -> str:
    """An edit keeps the first image's size unless a size was asked for."""
    if request.size is None or request.size == "auto":
        first = request.images[0]
        return f"{first.width}x{first.height}"
    return request.size


class LocalProvider(ImageProvider):
    async def generate(self, request: ImageRequest) -> ImageResult:
        if request.is_edit:
            return await self._edit(request)
        size = resolved_size(request)
        width, height = (int(side) for side in size.split("x"))
        output_format = request.output_format or "png"
        transparent = request.background == "transparent"

        def draw_all() -> list[bytes]:
            return [
                draw(
                    request.prompt,
                    seed_text=f"{request.upstream_model}|{size}|{index}",
                    width=width,
                    height=height,
                    output_format=output_format,
                    transparent=transparent,
                    compression=request.output_compression,
                )
                for index in range(request.n)
            ]

        # Drawing and encoding is CPU work: keep it off the event loop.
        encoded = await asyncio.to_thread(draw_all)
        media_type = MEDIA_TYPES[output_format]
        quality = request.quality
        return ImageResult(
            images=[GeneratedImage(media_type=media_type, data=data) for data in encoded],
            size=size,
            quality=_AUTO_QUALITY if quality in (None, "auto") else quality,
            background="transparent" if transparent else "opaque",
            output_format=output_format,
        )

    async def _edit(self, request: ImageRequest) -> ImageResult:
        size = edit_size(request)
        width, height = (int(side) for side in size.split("x"))
        output_format = request.output_format or "png"
        transparent = request.background == "transparent"

        def edit_all() -> list[bytes]:
            return [
                encode(
                    edit(request, index=index, width=width, height=height, transparent=transparent),
                    output_format,
                    request.output_compression,
                )
                for index in range(request.n)
            ]

        encoded = await asyncio.to_thread(edit_all)
        quality = request.quality
        return ImageResult(
            images=[
                GeneratedImage(media_type=MEDIA_TYPES[output_format], data=data) for data in encoded
            ],
            size=size,
            quality=_AUTO_QUALITY if quality in (None, "auto") else quality,
            background="transparent" if transparent else "opaque",
            output_format=output_format,
        )


def build(config: Mapping[str, Any], settings: Settings, http: httpx.AsyncClient) -> LocalProvider:
    return LocalProvider()
