"""Turns generated images into the ``data`` items of the response: inline base64, or links.

For ``url`` the images of one request are stored concurrently. When storing fails, the images
(already paid for upstream) are not thrown away: they are returned inline instead, and the
caller is told so in ``x-imagegw-delivery``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imagegw.errors import StorageUnavailable
from imagegw.providers.base import GeneratedImage
from imagegw.storage import ImageStore, new_key

logger = logging.getLogger(__name__)


@dataclass
class Delivery:
    items: list[dict[str, Any]]
    response_format: str
    headers: dict[str, str] = field(default_factory=dict)
    # True when url was asked for but storing failed, so the images came back inline.
    storage_failed: bool = False


def inline(images: list[GeneratedImage]) -> list[dict[str, Any]]:
    """Items with the images' ``Base64Text``: ``jsonbody`` writes it; ``jsonbody.plain`` makes
    the body plain JSON for serializers that are not ``jsonbody``."""
    return [_with_prompt({"b64_json": image.b64_text()}, image) for image in images]


async def as_links(
    images: list[GeneratedImage], store: ImageStore, *, base_url: str
) -> list[dict[str, Any]]:
    keys = [new_key(image.extension) for image in images]
    await asyncio.gather(
        *(
            store.put(key, image.data(), image.media_type)
            for key, image in zip(keys, images, strict=True)
        )
    )
    items = []
    for key, image in zip(keys, images, strict=True):
        link = await store.link(key, base_url=base_url)
        items.append(_with_prompt({"url": link.url, "expires_at": link.expires_at}, image))
    return items


async def deliver(
    images: list[GeneratedImage],
    response_format: str,
    store: Callable[[], ImageStore],
    *,
    base_url: str,
) -> Delivery:
    """``store`` is asked for only when links are needed: building it can fail (S3 without a
    bucket name), which must neither fail b64_json answers nor lose url ones."""
    if response_format == "b64_json":
        return Delivery(inline(images), "b64_json")
    try:
        return Delivery(await as_links(images, store(), base_url=base_url), "url")
    except StorageUnavailable:
        logger.exception("storing images failed; returning them inline instead")
        return Delivery(
            inline(images),
            "b64_json",
            headers={"x-imagegw-delivery": "b64_json; reason=storage_unavailable"},
            storage_failed=True,
        )


def _with_prompt(item: dict[str, Any], image: GeneratedImage) -> dict[str, Any]:
    if image.revised_prompt is not None:
        item["revised_prompt"] = image.revised_prompt
    return item
