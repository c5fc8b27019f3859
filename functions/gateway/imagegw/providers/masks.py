"""Edit masks between conventions: OpenAI's alpha mask and the white-for-change mask of others.

OpenAI marks the area to change with transparency: "fully transparent areas (alpha zero)
indicate where the image should be edited" (the mask applies to the first image). Stability
(REST and Bedrock), FLUX Fill and most inpainting models take a grayscale image instead: white
is repainted, black is kept, grey is partial strength.

The conversion is the exact inversion of the alpha channel, pixel by pixel:
``white = 255 - alpha``. Alpha 0 (change) becomes 255 (white), alpha 255 (keep) becomes 0
(black), and the partial transparency of a feathered edge becomes the matching grey, so a soft
mask stays soft. Colour channels of the OpenAI mask carry no meaning and are dropped.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from imagegw.errors import InvalidRequest
from imagegw.providers.inputs import InputImage

if TYPE_CHECKING:
    from PIL import Image

    from imagegw.providers.base import ImageRequest

WHITE_FOR_CHANGE = "white"
ALPHA_ZERO_FOR_CHANGE = "alpha"
CONVENTIONS = (ALPHA_ZERO_FOR_CHANGE, WHITE_FOR_CHANGE)


def change_strength(mask: InputImage) -> Image.Image:
    """An 8-bit grayscale image: 255 where the mask says change, 0 where it says keep."""
    from PIL import ImageChops

    alpha = mask.decoded().convert("RGBA").getchannel("A")
    return ImageChops.invert(alpha)


def white_for_change_png(mask: InputImage) -> bytes:
    """The OpenAI alpha mask as a grayscale PNG, white = change (Stability, FLUX Fill)."""
    buffer = io.BytesIO()
    change_strength(mask).save(buffer, "PNG")
    return buffer.getvalue()


def mask_bytes(mask: InputImage, convention: str) -> tuple[bytes, str]:
    """The mask in ``convention``, as (bytes, media type): unchanged for alpha-mask upstreams."""
    if convention == ALPHA_ZERO_FOR_CHANGE:
        return mask.data, mask.media_type
    if convention == WHITE_FOR_CHANGE:
        return white_for_change_png(mask), "image/png"
    raise ValueError(f"unknown mask convention {convention!r}; known: {', '.join(CONVENTIONS)}")


def inpaint_inputs(request: ImageRequest) -> tuple[InputImage, bytes, str]:
    """An inpainting model's inputs: the one image, and its mask white-for-change as (bytes,
    media type). Stability's API and Bedrock's Image Services take the same pair."""
    if len(request.images) != 1 or request.mask is None:
        # The catalog says so (one image, mask required) and generation/edits.py checks it.
        raise InvalidRequest(
            f"The model `{request.spec.id}` repaints one image where its mask says: send one "
            "image and a mask to POST /v1/images/edits.",
            param="mask",
        )
    (image,) = request.images
    mask, media_type = mask_bytes(request.mask, WHITE_FOR_CHANGE)
    return image, mask, media_type
