"""What keeps paid generations safe, per process: idempotency, per-key limits, retries.

``Reliability.guard`` wraps the upstream and delivery steps of one generation:

    async with runtime.reliability.guard(principal, body, key, ...) as guard:
        if guard.replay is not None:
            return guard.replay              # answered before: no upstream call, no limits
        ...                                  # upstream call, delivery through guard.image_store
        guard.succeeded(content, headers, delivered=len(images))

On the way in it claims the Idempotency-Key (or replays, waits, refuses) and reserves ``n``
images on the key's limits; on the way out it gives back undelivered images and keeps the answer
(or the billable failure) for replay. Locally everything is in memory; with
``IMAGEGW_IDEMPOTENCY_TABLE`` set, records and counters live in that DynamoDB table, shared by
every Lambda instance (``dynamodb.py``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from imagegw.providers.base import ImageProvider
from imagegw.providers.retry import RetryingProvider, RetryPolicy
from imagegw.schemas import ImageGenerationRequest
from imagegw.settings import Settings
from imagegw.state.auth import Principal
from imagegw.state.idempotency import (
    Idempotency,
    IdempotencyStore,
    LinkRecorder,
    MemoryIdempotencyStore,
    StoredResponse,
    Ticket,
    check_key,
    fingerprint,
    replayed_error,
    replayed_success,
)
from imagegw.state.limits import CounterStore, KeyLimits, MemoryCounterStore, Reservation
from imagegw.storage.base import ImageStore

logger = logging.getLogger(__name__)

Replay = tuple[dict[str, Any], dict[str, str], bytes]


class Guard:
    """One generation's view: a replay, or the store to deliver through and how it ended."""

    def __init__(self, image_store: LinkRecorder, replay: Replay | None = None) -> None:
        self.replay = replay
        self.image_store = image_store
        self.delivered = 0
        self.response: StoredResponse | None = None

    def succeeded(self, content: bytes, headers: dict[str, str], *, delivered: int) -> None:
        self.delivered = delivered
        links = self.image_store.keys_in(content)
        self.response = StoredResponse(200, content, dict(headers), links=links)


class Reliability:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float],
        idempotency_store: IdempotencyStore | None = None,
        counters: CounterStore | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._idempotency_store = idempotency_store
        self._counters = counters
        self._idempotency: Idempotency | None = None
        self._limits: KeyLimits | None = None
        self.retry_policy = RetryPolicy(
            max_attempts=settings.upstream_max_attempts,
            base_delay_seconds=settings.upstream_retry_base_seconds,
            max_delay_seconds=settings.upstream_retry_max_seconds,
        )

    @property
    def idempotency(self) -> Idempotency:
        if self._idempotency is None:
            store = self._idempotency_store
            if store is None:
                store = self._build_idempotency_store()
            self._idempotency = Idempotency(
                store,
                window_seconds=self._settings.idempotency_window_seconds,
                wait_seconds=self._settings.idempotency_wait_seconds,
                clock=self._clock,
            )
        return self._idempotency

    @property
    def limits(self) -> KeyLimits:
        if self._limits is None:
            counters = self._counters
            if counters is None:
                counters = self._build_counters()
            self._limits = KeyLimits(counters, self._clock)
        return self._limits

    def retrying(self, provider: ImageProvider) -> ImageProvider:
        return RetryingProvider(provider, self.retry_policy)

    @asynccontextmanager
    async def guard(
        self,
        principal: Principal,
        body: ImageGenerationRequest,
        idempotency_key: str | None,
        *,
        images: int,
        budget_seconds: float,
        image_store: Callable[[], ImageStore],
        base_url: str,
    ) -> AsyncIterator[Guard]:
        key = check_key(idempotency_key)
        ticket: Ticket | None = None
        if key is not None:
            print_ = fingerprint(body, principal.name)
            answer = await self.idempotency.begin(
                key, principal.name, print_, budget_seconds=budget_seconds
            )
            if isinstance(answer, StoredResponse):
                logger.info("idempotent replay", extra={"client": principal.name})
                if answer.is_error:
                    raise replayed_error(answer)
                yield Guard(
                    LinkRecorder(image_store),
                    await replayed_success(answer, image_store, base_url=base_url),
                )
                return
            ticket = answer
        guard = Guard(LinkRecorder(image_store))
        try:
            reservation = await self.reserve(principal, images)
            try:
                yield guard
            finally:
                await self.settle(reservation, guard.delivered)
        except BaseException as error:
            if ticket is not None:
                await self._forget(ticket, error)
            raise
        if ticket is not None and guard.response is not None:
            await self._keep(ticket, guard.response)

    async def reserve(self, principal: Principal, images: int) -> Reservation | None:
        """Take ``images`` from the key's limits (None when the key has none)."""
        if principal.rate is None and principal.quota is None:
            return None
        return await self.limits.reserve(principal, images)

    async def settle(self, reservation: Reservation | None, delivered: int) -> None:
        """Give back what was reserved but not delivered; never fails the caller."""
        if reservation is None:
            return
        try:
            await self.limits.settle(reservation, delivered)
        except Exception as exc:
            # The images are delivered; a failed refund only costs the key some room until the
            # window ends, so the caller still gets its answer.
            logger.warning("could not give back unused images", extra={"error": type(exc).__name__})

    async def _keep(self, ticket: Ticket, response: StoredResponse) -> None:
        try:
            await self.idempotency.finish(ticket, response)
        except Exception as exc:
            # The answer still goes out; a repeat after the lease would run again.
            logger.error("could not keep an idempotent answer", extra={"error": type(exc).__name__})

    async def _forget(self, ticket: Ticket, error: BaseException) -> None:
        try:
            await self.idempotency.fail(ticket, error)
        except Exception as exc:
            logger.error(
                "could not settle an idempotency record", extra={"error": type(exc).__name__}
            )

    def _build_idempotency_store(self) -> IdempotencyStore:
        settings = self._settings
        if settings.idempotency_table is None:
            return MemoryIdempotencyStore(max_bytes=settings.idempotency_memory_bytes)
        from imagegw.state.dynamodb import DynamoDBIdempotencyStore, S3Blobs, dynamodb_client

        blobs = None
        if settings.s3_bucket:
            blobs = S3Blobs(bucket=settings.s3_bucket, prefix=settings.idempotency_s3_prefix)
        return DynamoDBIdempotencyStore(
            settings.idempotency_table, client=dynamodb_client, blobs=blobs
        )

    def _build_counters(self) -> CounterStore:
        if self._settings.idempotency_table is None:
            return MemoryCounterStore(self._clock)
        from imagegw.state.dynamodb import DynamoDBCounterStore, dynamodb_client

        return DynamoDBCounterStore(self._settings.idempotency_table, client=dynamodb_client)
