"""OpenAI ``size`` -> Google's aspect ratio and resolution tier, one table per model family.

Google does not take a width and height: Imagen takes ``aspectRatio`` (+ ``sampleImageSize``
on Imagen 4), the Gemini image models take ``imageConfig.aspectRatio`` (+ ``imageSize`` on
Gemini 3). Each table lists the sizes Google documents for a family ("native" sizes, sent as
their ratio and tier) and the OpenAI sizes the product maps onto a ratio (1792x1024 -> 16:9 ...),
which are served at the family's default tier. A size in no table is refused by validation (the
catalog lists the same sizes); ``choose`` refuses it too, so nothing ever falls back to 1:1.

The catalog names a model's table in ``upstream_options.size_table``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from imagegw.errors import InvalidValue


@dataclass(frozen=True)
class SizeChoice:
    aspect_ratio: str
    # What is sent as the tier (sampleImageSize / imageSize); None: nothing is sent.
    tier: str | None
    # The WxH Google documents for this ratio and tier: what the caller is told it got.
    native: str


# Imagen 3 and 4 at 1K (Vertex model pages; shared/reference/providers.md §1.1).
_IMAGEN_1K = {
    "1:1": "1024x1024",
    "3:4": "896x1280",
    "4:3": "1280x896",
    "9:16": "768x1408",
    "16:9": "1408x768",
}
# Imagen 4 standard and ultra at 2K (sampleImageSize "2K").
_IMAGEN_2K = {
    "1:1": "2048x2048",
    "3:4": "1792x2560",
    "4:3": "2560x1792",
    "9:16": "1536x2816",
    "16:9": "2816x1536",
}
# Gemini 2.5 Flash Image: one resolution per ratio, no imageSize setting.
_GEMINI_25 = {
    "1:1": "1024x1024",
    "2:3": "832x1248",
    "3:2": "1248x832",
    "3:4": "864x1184",
    "4:3": "1184x864",
    "4:5": "896x1152",
    "5:4": "1152x896",
    "9:16": "768x1344",
    "16:9": "1344x768",
    "21:9": "1536x672",
}
# Gemini 3 Pro Image and 3.1 Flash Image, by imageSize.
_GEMINI_3 = {
    "1K": {
        "1:1": "1024x1024",
        "2:3": "848x1264",
        "3:2": "1264x848",
        "3:4": "896x1200",
        "4:3": "1200x896",
        "4:5": "928x1152",
        "5:4": "1152x928",
        "9:16": "768x1376",
        "16:9": "1376x768",
        "21:9": "1584x672",
    },
    "2K": {
        "1:1": "2048x2048",
        "2:3": "1696x2528",
        "3:2": "2528x1696",
        "3:4": "1792x2400",
        "4:3": "2400x1792",
        "4:5": "1856x2304",
        "5:4": "2304x1856",
        "9:16": "1536x2752",
        "16:9": "2752x1536",
        "21:9": "3168x1344",
    },
    "4K": {
        "1:1": "4096x4096",
        "2:3": "3392x5056",
        "3:2": "5056x3392",
        "3:4": "3584x4800",
        "4:3": "4800x3584",
        "4:5": "3712x4608",
        "5:4": "4608x3712",
        "9:16": "3072x5504",
        "16:9": "5504x3072",
        "21:9": "6336x2688",
    },
}

# OpenAI sizes the product maps onto a ratio (DALL-E 3's three, as documented for Imagen).
_OPENAI_DALLE = {"1024x1024": "1:1", "1792x1024": "16:9", "1024x1792": "9:16"}
# GPT image's landscape and portrait are exactly 3:2 and 2:3, which the Gemini models have.
_OPENAI_GPT_IMAGE = {"1536x1024": "3:2", "1024x1536": "2:3"}


def _native(sizes: Mapping[str, str], tier: str | None) -> dict[str, SizeChoice]:
    return {size: SizeChoice(ratio, tier, size) for ratio, size in sizes.items()}


def _mapped(
    openai_sizes: Mapping[str, str], default_tier: Mapping[str, str], tier: str | None
) -> dict[str, SizeChoice]:
    return {
        size: SizeChoice(ratio, tier, default_tier[ratio]) for size, ratio in openai_sizes.items()
    }


def _table(*parts: dict[str, SizeChoice]) -> dict[str, SizeChoice]:
    table: dict[str, SizeChoice] = {}
    for part in parts:
        for size, choice in part.items():
            # A native size also listed as an OpenAI size (1024x1024) keeps its native entry.
            table.setdefault(size, choice)
    return table


SIZE_TABLES: dict[str, dict[str, SizeChoice]] = {
    # Imagen 3 and Imagen 4 Fast: 1K only, no sampleImageSize sent.
    "imagen-1k": _table(_native(_IMAGEN_1K, None), _mapped(_OPENAI_DALLE, _IMAGEN_1K, None)),
    # Imagen 4 and 4 Ultra: 1K (the default, not sent) and 2K.
    "imagen-4": _table(
        _native(_IMAGEN_1K, None),
        _native(_IMAGEN_2K, "2K"),
        _mapped(_OPENAI_DALLE, _IMAGEN_1K, None),
    ),
    "gemini-2.5": _table(
        _native(_GEMINI_25, None),
        _mapped({**_OPENAI_DALLE, **_OPENAI_GPT_IMAGE}, _GEMINI_25, None),
    ),
    "gemini-3": _table(
        *(_native(sizes, tier) for tier, sizes in _GEMINI_3.items()),
        _mapped({**_OPENAI_DALLE, **_OPENAI_GPT_IMAGE}, _GEMINI_3["1K"], "1K"),
    ),
}


def choose(table_name: str, size: str, *, model_id: str) -> SizeChoice:
    """The ratio and tier for ``size``, or the 400 that lists the sizes the model takes."""
    table = SIZE_TABLES[table_name]
    choice = table.get(size)
    if choice is None:
        accepted = ", ".join(f"'{name}'" for name in table)
        raise InvalidValue(
            f"Invalid value for 'size': '{size}'. The model `{model_id}` supports: {accepted}.",
            param="size",
        )
    return choice
