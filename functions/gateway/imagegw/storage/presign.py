"""Presigned S3 GET URLs whose advertised expiry is true.

A presigned URL stops working when the credentials that signed it expire, whatever its
``X-Amz-Expires`` says. Two signers:

``RolePresigner`` (what the deployed stack uses) assumes a dedicated signer role and so knows
exactly when its credentials expire. It reuses them while they outlive a new URL by a margin and
assumes the role again otherwise. A Lambda function assuming a role is role chaining, which AWS
caps at one hour, so with the default one-hour lifetime credentials are shared only for
``SHARED_SECONDS`` (one STS call per response, not per image) and a URL's lifetime is the
credentials' remaining life, up to about half a minute short of the hour; ``expires_at`` says so
instead of promising more.

``OwnCredentialsPresigner`` signs with the process's own credentials. It is for development
(moto, MinIO) and hosts with long-lived keys; with temporary credentials of unknown expiry
(a Lambda role) it cannot keep its promise, which is why the template configures a signer role.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from imagegw.aws import clients as aws_clients
from imagegw.storage.base import StoredLink

# Role chaining (a role assuming a role) is capped at one hour by STS; 15 minutes is its floor.
MAX_ROLE_SESSION_SECONDS = 3600
MIN_ROLE_SESSION_SECONDS = 900
# Time a URL needs to travel to the caller and start downloading, kept off the credentials' life.
SAFETY_SECONDS = 5
# Credentials are reused while they outlive a full-lifetime URL by this much...
REUSE_MARGIN_SECONDS = 60
# ... and, whatever their remaining life, for this long after they were obtained, so the n links
# of one response share one STS call (each then lives at most this much less than the TTL,
# which its expires_at says).
SHARED_SECONDS = 30


class Presigner(ABC):
    @abstractmethod
    async def presign_get(self, bucket: str, object_key: str) -> StoredLink:
        """A SigV4 GET URL for the object and the moment it stops working."""

    @abstractmethod
    async def presign_post(self, bucket: str, object_key: str, policy: PostPolicy) -> PresignedPost:
        """A browser-style POST upload for the object, limited by ``policy``."""

    @abstractmethod
    async def head(self, bucket: str, object_key: str) -> bool:
        """Whether the object exists, asked with the signer's credentials."""


@dataclass(frozen=True)
class PostPolicy:
    """What an upload may be: the fields it must carry and its size range, for ``seconds``."""

    fields: dict[str, str]
    min_bytes: int
    max_bytes: int
    seconds: int


@dataclass(frozen=True)
class PresignedPost:
    url: str
    fields: dict[str, str]
    expires_at: int


def _presign_post(client: Any, bucket: str, object_key: str, policy: PostPolicy) -> dict[str, Any]:
    # Every field is also a condition, so S3 refuses a form that changes one of them; the size
    # range is enforced by S3 on the bytes it receives, whatever the client declares.
    conditions: list[Any] = [{name: value} for name, value in policy.fields.items()]
    conditions.append(["content-length-range", policy.min_bytes, policy.max_bytes])
    answer: dict[str, Any] = client.generate_presigned_post(
        Bucket=bucket,
        Key=object_key,
        Fields=dict(policy.fields),
        Conditions=conditions,
        ExpiresIn=policy.seconds,
    )
    return answer


# S3 answers a HEAD of a missing key with 404, or with 403 to a caller without s3:ListBucket
# (the signer role has none: it may read keys it is given, never enumerate the bucket).
_MISSING = frozenset({"404", "403", "NoSuchKey", "NotFound", "AccessDenied", "Forbidden"})


def _head(client: Any, bucket: str, object_key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=object_key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
            return False
        raise
    return True


def _presign(client: Any, bucket: str, object_key: str, seconds: int) -> str:
    url: str = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": object_key}, ExpiresIn=seconds
    )
    return url


class OwnCredentialsPresigner(Presigner):
    def __init__(
        self,
        client: Callable[[], Any],
        *,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client_factory = client
        self._client: Any = None
        self._ttl = ttl_seconds
        self._clock = clock

    async def presign_get(self, bucket: str, object_key: str) -> StoredLink:
        if self._client is None:
            self._client = self._client_factory()
        now = int(self._clock())
        return StoredLink(_presign(self._client, bucket, object_key, self._ttl), now + self._ttl)

    async def head(self, bucket: str, object_key: str) -> bool:
        if self._client is None:
            self._client = self._client_factory()
        return await asyncio.to_thread(_head, self._client, bucket, object_key)

    async def presign_post(self, bucket: str, object_key: str, policy: PostPolicy) -> PresignedPost:
        if self._client is None:
            self._client = self._client_factory()
        answer = _presign_post(self._client, bucket, object_key, policy)
        return PresignedPost(answer["url"], answer["fields"], int(self._clock()) + policy.seconds)


@dataclass(frozen=True)
class _Session:
    client: Any  # an S3 client holding the assumed credentials
    expires_at: float
    obtained_at: float


class RolePresigner(Presigner):
    def __init__(
        self,
        *,
        role_arn: str,
        ttl_seconds: int,
        sts_client: Callable[[], Any],
        s3_client: Callable[[dict[str, str]], Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._role_arn = role_arn
        self._ttl = ttl_seconds
        self._sts_client = sts_client
        self._s3_client = s3_client
        self._clock = clock
        self._sts: Any = None
        self._session: _Session | None = None
        self._lock: asyncio.Lock | None = None

    async def presign_get(self, bucket: str, object_key: str) -> StoredLink:
        session = await self._current_session()
        now = self._clock()
        seconds = int(min(self._ttl, session.expires_at - now - SAFETY_SECONDS))
        if seconds <= 0:
            raise RuntimeError("the signer role's credentials expired while signing")
        url = _presign(session.client, bucket, object_key, seconds)
        return StoredLink(url, int(now) + seconds)

    async def head(self, bucket: str, object_key: str) -> bool:
        session = await self._current_session()
        return await asyncio.to_thread(_head, session.client, bucket, object_key)

    async def presign_post(self, bucket: str, object_key: str, policy: PostPolicy) -> PresignedPost:
        session = await self._current_session()
        now = self._clock()
        seconds = int(min(policy.seconds, session.expires_at - now - SAFETY_SECONDS))
        if seconds <= 0:
            raise RuntimeError("the signer role's credentials expired while signing")
        limited = PostPolicy(policy.fields, policy.min_bytes, policy.max_bytes, seconds)
        answer = _presign_post(session.client, bucket, object_key, limited)
        return PresignedPost(answer["url"], answer["fields"], int(now) + seconds)

    def _usable(self, session: _Session | None) -> bool:
        if session is None:
            return False
        now = self._clock()
        return (
            session.expires_at - now >= self._ttl + REUSE_MARGIN_SECONDS
            or now - session.obtained_at < SHARED_SECONDS
        )

    async def _current_session(self) -> _Session:
        if self._usable(self._session):
            assert self._session is not None
            return self._session
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._usable(self._session):
                self._session = await asyncio.to_thread(self._assume)
            assert self._session is not None
            return self._session

    def _assume(self) -> _Session:
        if self._sts is None:
            self._sts = self._sts_client()
        duration = max(
            MIN_ROLE_SESSION_SECONDS,
            min(MAX_ROLE_SESSION_SECONDS, self._ttl + REUSE_MARGIN_SECONDS + SAFETY_SECONDS),
        )
        answer = self._sts.assume_role(
            RoleArn=self._role_arn, RoleSessionName="imagegw-url-signer", DurationSeconds=duration
        )
        credentials = answer["Credentials"]
        expiration = credentials["Expiration"]
        if isinstance(expiration, dt.datetime):
            expires_at = expiration.timestamp()
        else:
            expires_at = dt.datetime.fromisoformat(str(expiration)).timestamp()
        client = self._s3_client(
            {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        )
        return _Session(client, expires_at, self._clock())


def sts_client(region: str | None = None) -> Any:
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard"})
    # The regional endpoint: the global one adds latency and a dependency on us-east-1.
    return aws_clients.client("sts", region_name=region, config=config)
