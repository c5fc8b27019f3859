"""Where an edit's input images come from, read without trusting the caller's word.

An ``ImageSource`` is bytes (a multipart file), a ``file_id`` (an upload of this key, read from
the upload store), or an ``image_url``, which is, in order:

1. a ``data:`` URL: the base64 is decoded (strictly) and inspected like any file;
2. a link this gateway handed out (a local signed link, or an S3 presigned GET of its own
   bucket's images): the signature or lifetime is checked and the image read straight from
   storage, never fetched over HTTP (the gateway does not call itself, and a link to its bucket
   is not a way to make it read other objects: only keys under its image prefix are read);
3. anything else: fetched from the public internet only when ``IMAGEGW_EDIT_FETCH_HTTPS_URLS``
   allows it, through the SSRF guard of ``remote_images``; otherwise refused with a 400 that
   says how to send the image instead.

An edit that arrives as an event (SQS, EventBridge, a direct invocation: ``events``) carries
references, not bytes: a ``data:`` URL is refused, and an image of the gateway's own bucket may
also be named by its object, ``s3://<bucket>/<image prefix><key>`` (read with the gateway's role;
only its image prefix, as for presigned links). Over HTTP ``s3://`` is refused: a key holder
gets an image of the bucket through a link the gateway signed, never by naming an object.

Every failure is a 4xx naming where the image was given (``images[1].image_url``, ``mask``).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from imagegw.errors import (
    ForbiddenImageUrl,
    InvalidImage,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from imagegw.generation.edit_request import ImageSource
from imagegw.generation.remote_images import (
    FetchLimits,
    Resolver,
    fetch_public_image,
    system_resolver,
)
from imagegw.storage.base import ImageStore
from imagegw.storage.uploads import UploadStore

_DATA_URL = re.compile(r"^data:([a-zA-Z0-9!#$&^_.+-]+/[a-zA-Z0-9!#$&^_.+-]+)?((?:;[^,;]*)*),")


@dataclass(frozen=True)
class ImageReader:
    """Reads the sources of one caller's edit (``owner``: the key's name, for uploads)."""

    owner: str
    image_store: Callable[[], ImageStore]
    upload_store: Callable[[], UploadStore]
    http: Callable[[], httpx.AsyncClient]
    clock: Callable[[], float]
    max_bytes: int
    fetch_https: bool = False
    fetch_timeout_seconds: float = 10.0
    resolver: Resolver = system_resolver
    # An event's edit: references only (no data: URLs), s3:// objects of the gateway's bucket.
    events: bool = False

    async def read(self, source: ImageSource) -> bytes:
        if source.data is not None:
            return source.data
        if source.file_id is not None:
            return await self._upload(source.param, source.file_id)
        assert source.image_url is not None
        return await self._url(source.param, source.image_url)

    async def _upload(self, param: str, file_id: str) -> bytes:
        try:
            return await self.upload_store().read(
                file_id, owner=self.owner, max_bytes=self.max_bytes
            )
        except NotFound as exc:
            raise InvalidImage(
                f"Invalid '{param}.file_id': {exc.message}",
                param=f"{param}.file_id",
                code=exc.code,
            ) from exc
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(exc.message, param=f"{param}.file_id") from exc

    async def _bucket_object(self, store: ImageStore, where: str, url: str) -> bytes:
        if not self.events:
            raise ForbiddenImageUrl(
                f"Invalid '{where}': s3:// references are read only in events (SQS, "
                "EventBridge, direct invocations). Over HTTP, give the link the gateway "
                "returned for the image, a file_id, or the image itself.",
                param=where,
            )
        key = store.key_of_bucket_url(url)
        if key is None:
            raise ForbiddenImageUrl(
                f"Invalid '{where}': an s3:// reference must name an image of this gateway's "
                "bucket under its image prefix (s3://<bucket>/<prefix><key>, as the gateway "
                "stored it).",
                param=where,
            )
        try:
            return await store.read(key, max_bytes=self.max_bytes)
        except NotFound as exc:
            raise InvalidImage(
                f"Invalid '{where}': {exc.message}", param=where, code=exc.code
            ) from exc
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(exc.message, param=where) from exc

    async def _url(self, param: str, url: str) -> bytes:
        where = f"{param}.image_url"
        scheme = url[:5].lower()
        if scheme == "data:":
            if self.events:
                raise ForbiddenImageUrl(
                    f"Invalid '{where}': an event names its images by reference, not with "
                    "their bytes (a data: URL). Give a file_id (POST /v1/images/uploads), a "
                    "link or s3:// object of this gateway's bucket, or an https URL.",
                    param=where,
                )
            return decode_data_url(url, param=where, max_bytes=self.max_bytes)
        store = self.image_store()
        if scheme == "s3://":
            return await self._bucket_object(store, where, url)
        try:
            key = store.key_of_link(url, now=self.clock())
            if key is not None:
                return await store.read(key, max_bytes=self.max_bytes)
        except (NotFound, PermissionDenied) as exc:
            raise InvalidImage(
                f"Invalid '{where}': {exc.message}", param=where, code=exc.code
            ) from exc
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(exc.message, param=where) from exc
        if not self.fetch_https:
            raise ForbiddenImageUrl(
                f"Invalid '{where}': this gateway reads only its own image links, data: URLs "
                "and uploads (file_id); it does not fetch other URLs. Send the image as a file "
                "(multipart), as a data: URL, or upload it through POST /v1/images/uploads.",
                param=where,
            )
        limits = FetchLimits(self.max_bytes, self.fetch_timeout_seconds)
        return await fetch_public_image(
            self.http(), url, param=param, limits=limits, resolver=self.resolver
        )


def decode_data_url(url: str, *, param: str, max_bytes: int) -> bytes:
    """The bytes of a base64 ``data:`` URL (its declared media type is not believed)."""
    match = _DATA_URL.match(url)
    if match is None or ";base64" not in match.group(2).lower():
        raise InvalidImage(
            f"Invalid '{param}': a data: URL must be base64 (data:image/png;base64,...).",
            param=param,
        )
    payload = url[match.end() :]
    if len(payload) // 4 * 3 > max_bytes + 3:
        raise PayloadTooLarge(
            f"The image in '{param}' is larger than {max_bytes} bytes.", param=param
        )
    try:
        data = binascii.a2b_base64(payload, strict_mode=True)
    except binascii.Error as exc:
        raise InvalidImage(
            f"Invalid '{param}': the data: URL is not valid base64.", param=param
        ) from exc
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The image in '{param}' is larger than {max_bytes} bytes.", param=param
        )
    return data
