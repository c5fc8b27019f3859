"""AWS Secrets Manager values, read lazily and cached per process with a time-to-live.

A rotated secret reaches a warm process within ``ttl`` seconds, without a redeploy. While
Secrets Manager cannot be reached, the last good value keeps serving for a bounded ``grace``
period; with no value at all the caller gets a 503 that names the secret's role (never its
value). botocore is imported on first use, not at startup.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from imagegw.aws import clients as aws_clients
from imagegw.errors import SecretUnavailable

logger = logging.getLogger(__name__)

Fetch = Callable[[], str]


def secretsmanager_fetch(
    secret_id: str, *, region: str | None = None, endpoint_url: str | None = None
) -> Fetch:
    """A function that reads ``secret_id``'s current string value (blocking; run in a thread)."""
    client: Any = None

    def fetch() -> str:
        nonlocal client
        if client is None:
            from botocore.config import Config

            # Fail fast: a request waits on this, and the cached value can cover an outage.
            config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2})
            client = aws_clients.client(
                "secretsmanager", region_name=region, endpoint_url=endpoint_url, config=config
            )
        value = client.get_secret_value(SecretId=secret_id)["SecretString"]
        if not isinstance(value, str):
            raise TypeError("the secret has no string value")
        return value

    return fetch


class CachedSecret:
    """One JSON secret: fetched on first use, again after ``ttl``, stale for ``grace`` at most."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        role: str,
        ttl_seconds: float,
        grace_seconds: float,
        retry_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._role = role
        self._ttl = ttl_seconds
        self._grace = grace_seconds
        self._clock = clock
        self._value: dict[str, Any] | None = None
        self._retry = retry_seconds
        self._fetched_at = 0.0
        # After a failed refresh, requests are not all sent to a struggling Secrets Manager.
        self._next_attempt = 0.0
        self._lock: asyncio.Lock | None = None

    @property
    def role(self) -> str:
        return self._role

    def _within_grace(self) -> bool:
        return (
            self._value is not None and self._clock() - self._fetched_at < self._ttl + self._grace
        )

    def _fresh(self) -> bool:
        if self._value is None:
            return False
        now = self._clock()
        return now - self._fetched_at < self._ttl or (
            now < self._next_attempt and now - self._fetched_at < self._ttl + self._grace
        )

    async def value(self) -> dict[str, Any]:
        if self._fresh():
            assert self._value is not None
            return self._value
        if self._lock is None:
            self._lock = asyncio.Lock()
        if self._lock.locked() and self._within_grace():
            # One request is already refreshing (maybe against a hanging endpoint): the others
            # keep serving the last good value instead of queueing behind it.
            assert self._value is not None
            return self._value
        async with self._lock:
            # Another request may have refreshed it while this one waited.
            if self._fresh():
                assert self._value is not None
                return self._value
            return await self._refresh()

    async def _refresh(self) -> dict[str, Any]:
        try:
            raw = await asyncio.to_thread(self._fetch)
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise TypeError("the secret is not a JSON object")
        except Exception as exc:
            # Which exception matters to operators; its text may quote the secret, so it is
            # not logged, and the caller sees only the secret's role.
            age = self._clock() - self._fetched_at
            self._next_attempt = self._clock() + self._retry
            if self._value is not None and age < self._ttl + self._grace:
                logger.warning(
                    "secret refresh failed; serving the cached value",
                    extra={"secret": self._role, "error": type(exc).__name__},
                )
                return self._value
            logger.error(
                "secret unavailable", extra={"secret": self._role, "error": type(exc).__name__}
            )
            raise SecretUnavailable(
                f"The gateway cannot read its {self._role} from AWS Secrets Manager right now."
            ) from exc
        self._value = value
        self._fetched_at = self._clock()
        self._next_attempt = 0.0
        return value
