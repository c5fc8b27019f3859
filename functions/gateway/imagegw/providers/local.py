"""The offline development provider: draws real images in-process, no key, no network.

Each image is a deterministic abstract picture seeded by model, prompt, size and index, so the
same request gives the same bytes, and different prompts give visibly different images. It is
a stand-in for an upstream during development and tests, not a generative model.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from imagegw.providers.base import (
    MEDIA_TYPES,
    Completed,
    GeneratedImage,
    ImageProvider,
    ImageRequest,
    ImageResult,
    PartialImage,
    StreamEvent,
)

if TYPE_CHECKING:
    import httpx
    from PIL.Image import Image as PILImage

    from imagegw.settings import Settings

_AUTO_QUALITY = "medium"
_DEFAULT_SIZE = "1024x1024"


def resolved_size(request: ImageRequest) -> str:
    size = request.size or "auto"
    if size != "auto":
        return size
    default = request.spec.default_size
    return default if default and default != "auto" else _DEFAULT_SIZE


def picture(prompt: str, *, seed_text: str, width: int, height: int, transparent: bool) -> PILImage:
    """The image, not yet encoded. Pillow is imported here, on first use, not at startup."""
    from PIL import Image, ImageDraw

    # surrogatepass: total for any str (the parser already refuses lone surrogates).
    seed = hashlib.sha256(f"{seed_text}\x00{prompt}".encode("utf-8", "surrogatepass")).digest()
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


def encode(image: PILImage, output_format: str, compression: int | None) -> bytes:
    buffer = io.BytesIO()
    quality = 90 if compression is None else compression  # 0 is a real choice, not "unset"
    if output_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
    elif output_format == "webp":
        image.save(buffer, "WEBP", quality=quality)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


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
    """One image as encoded bytes."""
    image = picture(
        prompt, seed_text=seed_text, width=width, height=height, transparent=transparent
    )
    return encode(image, output_format, compression)


def draw_coarse(
    prompt: str,
    *,
    seed_text: str,
    width: int,
    height: int,
    output_format: str,
    transparent: bool,
    compression: int | None,
    factor: int,
) -> bytes:
    """The same picture rendered at 1/``factor`` of its size, shown at full size: a partial
    image that really is the final one at a coarser stage (blocks where detail will be)."""
    from PIL import Image

    small = picture(
        prompt,
        seed_text=seed_text,
        width=max(1, width // factor),
        height=max(1, height // factor),
        transparent=transparent,
    )
    return encode(
        small.resize((width, height), Image.Resampling.NEAREST), output_format, compression
    )


def coarseness(index: int, partial_images: int) -> int:
    """How much coarser partial ``index`` of ``partial_images`` is: halving per step, the last
    partial at 1/4 of the final resolution (3 partials: 1/16, 1/8, 1/4)."""
    return int(2 ** (partial_images - index + 1))


def _mix(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2, (a[2] + b[2]) // 2)


def edit(
    request: ImageRequest, *, index: int, width: int, height: int, transparent: bool
) -> PILImage:
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
    painted = picture(
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


def edit_coarse(
    request: ImageRequest, *, width: int, height: int, output_format: str, factor: int
) -> bytes:
    """The (first) edit at 1/``factor`` of its resolution, shown at full size: a partial image
    that is the final edit at a coarser stage, as ``draw_coarse`` is for a generation."""
    from PIL import Image

    final = edit(
        request,
        index=0,
        width=width,
        height=height,
        transparent=request.background == "transparent",
    )
    small = final.resize((max(1, width // factor), max(1, height // factor)), Image.Resampling.BOX)
    return encode(
        small.resize((width, height), Image.Resampling.NEAREST),
        output_format,
        request.output_compression,
    )


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

    async def stream(self, request: ImageRequest) -> AsyncGenerator[StreamEvent, None]:
        """Partial images first, coarse to fine, each rendered as it is sent; then the result.

        Streams carry one image (``n`` is 1: OpenAI's rule, checked before the provider)."""
        if request.is_edit:
            async for event in self._stream_edit(request):
                yield event
            return
        size = resolved_size(request)
        width, height = (int(side) for side in size.split("x"))
        output_format = request.output_format or "png"
        media_type = MEDIA_TYPES[output_format]
        for index in range(request.partial_images):
            data = await asyncio.to_thread(
                draw_coarse,
                request.prompt,
                seed_text=f"{request.upstream_model}|{size}|0",
                width=width,
                height=height,
                output_format=output_format,
                transparent=request.background == "transparent",
                compression=request.output_compression,
                factor=coarseness(index, request.partial_images),
            )
            yield PartialImage(index, GeneratedImage(media_type=media_type, data=data))
        yield Completed(await self.generate(request))

    async def _stream_edit(self, request: ImageRequest) -> AsyncGenerator[StreamEvent, None]:
        """An edit's partial images: the edit itself at coarser stages (``edit_coarse``)."""
        size = edit_size(request)
        width, height = (int(side) for side in size.split("x"))
        output_format = request.output_format or "png"
        media_type = MEDIA_TYPES[output_format]
        for index in range(request.partial_images):
            data = await asyncio.to_thread(
                edit_coarse,
                request,
                width=width,
                height=height,
                output_format=output_format,
                factor=coarseness(index, request.partial_images),
            )
            yield PartialImage(index, GeneratedImage(media_type=media_type, data=data))
        yield Completed(await self.generate(request))


def build(config: Mapping[str, Any], settings: Settings, http: httpx.AsyncClient) -> LocalProvider:
    return LocalProvider()
