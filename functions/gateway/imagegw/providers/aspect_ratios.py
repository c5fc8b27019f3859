"""OpenAI ``size`` -> one of Stability's nine aspect ratios (Bedrock and the Stability API).

Stability's generators take ``aspect_ratio`` only, never a width and height, and pick the pixels
themselves. A model accepts the sizes of Stability's own ladder for each ratio (the SD3 family's
sizes, sent as their ratio) and the four OpenAI sizes whose shape one ratio matches
(1536x1024 is 3:2 exactly, 1792x1024 is 1.75 and goes to 16:9, ...). Anything else is a 400 listing
these, never a silent 1:1: 256x256 or 512x512 would come back four or sixteen times larger.
The caller is told the ratio sent and the size that came back (read from the image, since the
exact output of Ultra and Core per ratio is not documented).

The catalog lists the same sizes (``sizes``) and names this table in
``upstream_options.size_table``; a test keeps both equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagegw.errors import InvalidValue


@dataclass(frozen=True)
class RatioChoice:
    aspect_ratio: str
    # The size of Stability's ladder for the ratio: what the caller is told when the image's own
    # header cannot be read.
    nominal: str


# The SD3 family's ~1 megapixel ladder (shared/reference/providers-2.md §1.3).
STABILITY_LADDER = {
    "1:1": "1024x1024",
    "16:9": "1344x768",
    "21:9": "1536x640",
    "3:2": "1216x832",
    "2:3": "832x1216",
    "4:5": "896x1088",
    "5:4": "1088x896",
    "9:16": "768x1344",
    "9:21": "640x1536",
}
# OpenAI sizes mapped onto the ratio of the same (or, for DALL-E 3's 1.75, the nearest) shape.
OPENAI_SIZES = {
    "1536x1024": "3:2",
    "1024x1536": "2:3",
    "1792x1024": "16:9",
    "1024x1792": "9:16",
}

SIZE_TABLES: dict[str, dict[str, RatioChoice]] = {
    "stability": {
        **{size: RatioChoice(ratio, size) for ratio, size in STABILITY_LADDER.items()},
        **{
            size: RatioChoice(ratio, STABILITY_LADDER[ratio])
            for size, ratio in OPENAI_SIZES.items()
        },
    }
}


def choose(table_name: str, size: str, *, model_id: str) -> RatioChoice:
    """The ratio for ``size``, or the 400 that names it and lists the sizes the model takes."""
    table = SIZE_TABLES[table_name]
    choice = table.get(size)
    if choice is None:
        accepted = ", ".join(f"'{name}'" for name in table)
        raise InvalidValue(
            f"Invalid value for 'size': '{size}'. The model `{model_id}` takes an aspect ratio, "
            f"not a size, and supports: {accepted}.",
            param="size",
        )
    return choice
