"""The storage contract behind ``response_format=url``.

A store keeps image bytes under a key that reveals nothing about the request, and hands out a
link that works for a bounded time. The local store serves its own signed links; the S3 store
hands out SigV4 presigned URLs. Delivery and jobs only see this interface. ``link`` is async
because signing may need fresh credentials (an STS call) first.
"""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass

# 128 random bits and the format's extension: no prompt, client or time in a key.
_KEY = re.compile(r"^[0-9a-f]{32}\.(png|jpeg|webp)$")


def new_key(extension: str) -> str:
    return f"{secrets.token_hex(16)}.{extension}"


def is_valid_key(key: str) -> bool:
    return _KEY.match(key) is not None


@dataclass(frozen=True)
class StoredLink:
    url: str
    expires_at: int  # unix seconds


class ImageStore(ABC):
    @abstractmethod
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data``; raise ``StorageUnavailable`` when it cannot be stored."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether ``key`` is still stored (a retention rule may have deleted it).

        Raise ``StorageUnavailable`` when the store cannot say.
        """

    @abstractmethod
    async def link(self, key: str, *, base_url: str) -> StoredLink:
        """A URL for ``key`` that stops working after the store's lifetime.

        ``base_url`` is where the gateway itself is reachable, for stores that serve their own
        links; stores with their own endpoint ignore it.
        """

    def key_of_link(self, url: str, *, now: float) -> str | None:
        """The key behind ``url`` if it is a link this store handed out; None if it is not.

        A link of this store that is no longer valid raises (``LinkRefused``, ``NotFound``).
        Lets an edit take an earlier answer's image without fetching the URL over HTTP.
        """
        return None

    def key_of_bucket_url(self, url: str) -> str | None:
        """The key behind ``s3://<bucket>/<object>`` if it names an image of this store (its
        bucket, under its image prefix, a key the gateway made); None otherwise, and always for
        stores without a bucket. Lets an event name a stored image without a link."""
        return None

    async def read(self, key: str, *, max_bytes: int) -> bytes:
        """The bytes stored under ``key`` (an image of an earlier answer, edited now).

        Raises ``NotFound`` when there is no such image, ``PayloadTooLarge`` above ``max_bytes``.
        Stores that cannot read back say so with ``NotFound``.
        """
        from imagegw.errors import NotFound

        raise NotFound("This image store cannot read images back.", code="image_not_found")
