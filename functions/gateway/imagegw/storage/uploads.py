"""Input images uploaded beside the API, for edits larger than a Lambda request body.

API Gateway and a buffered Lambda cap a request at about 6 MB; an edit may take 16 images of up
to 50 MB. ``POST /v1/images/uploads`` therefore hands out an upload form that goes straight to
storage, and a ``file_id`` that a JSON edit then names.

Both stores speak the same shape, an S3 "presigned POST": a URL and form fields, the file as the
last part (``file``). Its signed policy fixes the object, the declared content type, the owner
and the size range, and expires after minutes:

- ``S3UploadStore``: S3 enforces the policy; objects land under ``uploads/`` with server-side
  encryption and the owner (a hash of the key's name) as metadata.
- ``LocalUploadStore``: the gateway itself receives the form (``POST /v1/images/uploads/{id}``)
  and checks an HMAC-signed policy the same way; files land on local disk.

Reading an upload back checks the owner: a ``file_id`` is usable only by the key that made it.
The bytes are still untrusted (the declared type proves nothing): edits inspect them like any
other input.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegw.errors import NotFound, PayloadTooLarge, StorageUnavailable, UploadRefused
from imagegw.storage.presign import PostPolicy, Presigner
from imagegw.storage.s3 import read_object
from imagegw.storage.upload_form import UPLOADS_PATH

# How long an upload stays readable (S3: the bucket's lifecycle rule says one day too).
KEPT_SECONDS = 86_400
_FILE_ID = re.compile(r"^file-imagegw-([0-9a-f]{32})$")


@dataclass(frozen=True)
class UploadTicket:
    file_id: str
    url: str
    fields: dict[str, str]
    expires_at: int
    max_bytes: int
    content_type: str


def new_file_id() -> str:
    return f"file-imagegw-{secrets.token_hex(16)}"


def upload_token(file_id: str) -> str | None:
    """The random part of a file id of ours, or None for any other string."""
    match = _FILE_ID.match(file_id)
    return match.group(1) if match else None


def owner_tag(owner: str) -> str:
    """Who may read an upload, without writing the key's name into storage."""
    return hashlib.sha256(f"imagegw-upload-owner\0{owner}".encode()).hexdigest()[:32]


def _not_found(file_id: str) -> NotFound:
    # The same answer for "never uploaded", "expired" and "someone else's": nothing to probe.
    shown = file_id if len(file_id) <= 64 else file_id[:64] + "..."
    return NotFound(
        f"No uploaded image '{shown}' for this key (uploads are usable by the key that made "
        "them, until they expire).",
        code="file_not_found",
    )


class UploadStore(ABC):
    @abstractmethod
    async def create(
        self, *, owner: str, content_type: str, max_bytes: int, base_url: str
    ) -> UploadTicket:
        """A new upload form for one image of at most ``max_bytes``."""

    @abstractmethod
    async def read(self, file_id: str, *, owner: str, max_bytes: int) -> bytes:
        """The uploaded bytes, if ``owner`` made the upload; ``NotFound`` otherwise."""

    @abstractmethod
    async def put(self, data: bytes, *, owner: str) -> str:
        """Keep ``data`` as an upload of ``owner`` (an edit job's input); its file id."""


class S3UploadStore(UploadStore):
    def __init__(
        self,
        client: Callable[[], Any],
        presigner: Presigner,
        *,
        bucket: str,
        prefix: str = "uploads/",
        ttl_seconds: int = 600,
        kms_key_id: str | None = None,
    ) -> None:
        self._client_factory = client
        self._client: Any = None
        self._presigner = presigner
        self._bucket = bucket
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._kms_key_id = kms_key_id

    async def create(
        self, *, owner: str, content_type: str, max_bytes: int, base_url: str
    ) -> UploadTicket:
        file_id = new_file_id()
        token = upload_token(file_id)
        assert token is not None
        fields = {
            "Content-Type": content_type,
            "x-amz-meta-owner": owner_tag(owner),
            "x-amz-server-side-encryption": "aws:kms" if self._kms_key_id else "AES256",
        }
        if self._kms_key_id:
            fields["x-amz-server-side-encryption-aws-kms-key-id"] = self._kms_key_id
        policy = PostPolicy(fields, min_bytes=1, max_bytes=max_bytes, seconds=self._ttl)
        try:
            post = await self._presigner.presign_post(self._bucket, self._prefix + token, policy)
        except Exception as exc:
            raise StorageUnavailable("The gateway could not sign an upload form.") from exc
        return UploadTicket(
            file_id, post.url, post.fields, post.expires_at, max_bytes, content_type
        )

    async def read(self, file_id: str, *, owner: str, max_bytes: int) -> bytes:
        token = upload_token(file_id)
        if token is None:
            raise _not_found(file_id)
        if self._client is None:
            self._client = self._client_factory()
        object_key = self._prefix + token
        head = await asyncio.to_thread(self._head, object_key)
        if head is None or head.get("Metadata", {}).get("owner") != owner_tag(owner):
            raise _not_found(file_id)
        return await read_object(self._client, self._bucket, object_key, max_bytes=max_bytes)

    async def put(self, data: bytes, *, owner: str) -> str:
        file_id = new_file_id()
        token = upload_token(file_id)
        assert token is not None
        encryption: dict[str, str] = {"ServerSideEncryption": "AES256"}
        if self._kms_key_id:
            encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self._kms_key_id}
        if self._client is None:
            self._client = self._client_factory()
        try:
            await asyncio.to_thread(
                self._client.put_object,
                Bucket=self._bucket,
                Key=self._prefix + token,
                Body=data,
                ContentType="application/octet-stream",
                Metadata={"owner": owner_tag(owner)},
                **encryption,
            )
        except Exception as exc:  # botocore's errors share no narrower useful base
            raise StorageUnavailable("The gateway could not keep the edit's inputs.") from exc
        return file_id

    def _head(self, object_key: str) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = self._client.head_object(Bucket=self._bucket, Key=object_key)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound", "403"):
                return None
            raise StorageUnavailable("The gateway could not read the upload.") from exc
        return answer


class LocalUploadStore(UploadStore):
    """Uploads on local disk, received by the gateway under an HMAC-signed policy."""

    def __init__(
        self,
        directory: Path,
        *,
        signing_secret: bytes,
        ttl_seconds: int = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._secret = signing_secret
        self._ttl = ttl_seconds
        self._clock = clock

    async def create(
        self, *, owner: str, content_type: str, max_bytes: int, base_url: str
    ) -> UploadTicket:
        file_id = new_file_id()
        expires_at = int(self._clock()) + self._ttl
        document = {
            "file_id": file_id,
            "owner": owner_tag(owner),
            "content_type": content_type,
            "max_bytes": max_bytes,
            "expires_at": expires_at,
        }
        policy = base64.b64encode(json.dumps(document, sort_keys=True).encode()).decode("ascii")
        fields = {"Content-Type": content_type, "policy": policy, "signature": self._sign(policy)}
        url = f"{base_url.rstrip('/')}{UPLOADS_PATH}/{file_id}"
        return UploadTicket(file_id, url, fields, expires_at, max_bytes, content_type)

    def policy(self, file_id: str, *, policy: str, signature: str) -> dict[str, Any]:
        """The upload's signed policy, if the form carries a genuine, current one for it."""
        # compare_digest raises on non-ASCII text: such a signature is simply not genuine.
        if not signature.isascii() or not hmac.compare_digest(self._sign(policy), signature):
            raise UploadRefused("The upload form's signature is not valid.")
        document: dict[str, Any] = json.loads(base64.b64decode(policy, validate=True))
        if document.get("file_id") != file_id:
            raise UploadRefused("The upload form belongs to another upload.")
        if int(document["expires_at"]) <= self._clock():
            raise UploadRefused("The upload form has expired; ask for a new one.")
        return document

    async def accept(
        self, file_id: str, document: dict[str, Any], content_type: str, data: bytes
    ) -> None:
        """Store the form's file, as S3 would: only within the policy's type and size."""
        if content_type != document["content_type"]:
            raise UploadRefused(
                f"The file's Content-Type '{content_type[:60]}' is not the one the upload form "
                f"was made for ('{document['content_type']}')."
            )
        if not 1 <= len(data) <= int(document["max_bytes"]):
            raise PayloadTooLarge(
                f"The upload is {len(data)} bytes; this upload form accepts 1 to "
                f"{document['max_bytes']} bytes."
            )
        token = upload_token(file_id)
        if token is None:
            raise _not_found(file_id)
        meta = json.dumps(
            {"owner": document["owner"], "expires_at": int(self._clock()) + KEPT_SECONDS}
        )
        try:
            await asyncio.to_thread(self._write, token, data, meta)
        except OSError as exc:
            raise StorageUnavailable("The gateway could not store the upload.") from exc

    async def put(self, data: bytes, *, owner: str) -> str:
        file_id = new_file_id()
        token = upload_token(file_id)
        assert token is not None
        meta = json.dumps(
            {"owner": owner_tag(owner), "expires_at": int(self._clock()) + KEPT_SECONDS}
        )
        try:
            await asyncio.to_thread(self._write, token, data, meta)
        except OSError as exc:
            raise StorageUnavailable("The gateway could not keep the edit's inputs.") from exc
        return file_id

    async def read(self, file_id: str, *, owner: str, max_bytes: int) -> bytes:
        token = upload_token(file_id)
        if token is None:
            raise _not_found(file_id)
        try:
            meta = json.loads((self._directory / f"{token}.json").read_text(encoding="utf-8"))
            if meta.get("owner") != owner_tag(owner) or meta["expires_at"] <= self._clock():
                raise _not_found(file_id)
            path = self._directory / token
            if path.stat().st_size > max_bytes:
                raise PayloadTooLarge(f"The uploaded image is larger than {max_bytes} bytes.")
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise _not_found(file_id) from exc

    def _write(self, token: str, data: bytes, meta: str) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        partial = self._directory / f".{token}.partial"
        partial.write_bytes(data)
        os.replace(partial, self._directory / token)
        (self._directory / f"{token}.json").write_text(meta, encoding="utf-8")

    def _sign(self, policy: str) -> str:
        return hmac.new(self._secret, f"upload\n{policy}".encode(), hashlib.sha256).hexdigest()
