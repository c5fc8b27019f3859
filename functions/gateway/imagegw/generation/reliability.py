"""What keeps paid generations safe, per process: idempotency, per-key limits, retries.

``Reliability.guard`` wraps the upstream and delivery steps of one generation:

    async with runtime.reliability.guard(principal, body, key, ...) as guard:
        if guard.replay is not None:
            return guard.replay              # answered before: no upstream call, no limits
        ...                                  # upstream call, delivery through guard.image_store
        guard.succeeded(lambda: content, headers, delivered=len(images))

On the way in it claims the Idempotency-Key (or replays, waits, refuses), reserves ``n``
images on the key's limits and holds the request's maximum cost on its spend budgets; on the way
out it gives back undelivered images, settles the hold to what the delivered images cost
(releases it on failure), adds the generation to the usage ledger, and keeps the answer (or the
billable failure) for replay. A replay is answered before any of that: it is never charged
twice. Locally everything is in memory; with ``IMAGEGW_IDEMPOTENCY_TABLE`` set, records,
counters and the usage ledger live in that DynamoDB table, shared by every Lambda instance
(``state/dynamodb.py``, ``state/usage_dynamodb.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from imagegw.catalog.prices import Cost, to_micros
from imagegw.errors import ModelNotPriced
from imagegw.providers.base import ImageProvider
from imagegw.providers.retry import RetryingProvider, RetryPolicy
from imagegw.schemas import ImageGenerationRequest
from imagegw.settings import Settings
from imagegw.state.auth import Principal
from imagegw.state.budgets import Budgets, SpendCeiling, SpendHold
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
from imagegw.state.usage import MemoryUsageLedger, Totals, UsageLedger
from imagegw.storage.base import ImageStore

logger = logging.getLogger(__name__)

Replay = tuple[dict[str, Any], dict[str, str], bytes]
# The longest an answer waits for its usage entry to be written (record_usage).
USAGE_RECORD_SECONDS = 2.0


class Guard:
    """One generation's view: a replay, or the store to deliver through and how it ended."""

    def __init__(self, image_store: LinkRecorder, replay: Replay | None = None) -> None:
        self.replay = replay
        self.image_store = image_store
        self.delivered = 0
        self.answered = False
        self._answer: tuple[Callable[[], bytes], dict[str, str]] | None = None
        self.model: str | None = None
        self.cost: Cost | None = None

    def succeeded(
        self,
        content: Callable[[], bytes],
        headers: dict[str, str],
        *,
        delivered: int,
        model: str,
        cost: Cost | None,
    ) -> None:
        """The answer went out: ``delivered`` images of ``model`` that cost ``cost``.

        ``content()`` makes the body as one piece of bytes; only an Idempotency-Key's record
        needs it (``stored``): other answers are written in pieces, never joined.
        """
        self.delivered = delivered
        self.model = model
        self.cost = cost
        self.answered = True
        self._answer = (content, dict(headers))

    def stored(self) -> StoredResponse:
        """The answer as the idempotency record keeps it (after ``succeeded``)."""
        assert self._answer is not None, "only an answered generation is kept"
        content_of, headers = self._answer
        content = content_of()
        return StoredResponse(200, content, headers, links=self.image_store.keys_in(content))


@dataclass(frozen=True)
class Taken:
    """What one request took from its key before the upstream call: images and money."""

    reservation: Reservation | None
    hold: SpendHold | None

    def to_json(self) -> dict[str, Any] | None:
        """For a job record (``Job.reserved``); None when nothing was taken."""
        if self.reservation is None and self.hold is None:
            return None
        document: dict[str, Any] = {"counters": [], "images": 0}
        if self.reservation is not None:
            document = {
                "counters": list(self.reservation.counters),
                "images": self.reservation.images,
            }
        if self.hold is not None:
            document["spend"] = self.hold.to_json()
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any] | None) -> Taken:
        if not document:
            return cls(None, None)
        counters = tuple(document.get("counters") or ())
        reservation = Reservation(counters, int(document.get("images") or 0)) if counters else None
        spend = document.get("spend")
        return cls(reservation, SpendHold.from_json(spend) if spend else None)


class Reliability:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float],
        idempotency_store: IdempotencyStore | None = None,
        counters: CounterStore | None = None,
        usage: UsageLedger | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._idempotency_store = idempotency_store
        self._counters = counters
        self._usage = usage
        self._idempotency: Idempotency | None = None
        self._limits: KeyLimits | None = None
        self._budgets: Budgets | None = None
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
    def counters(self) -> CounterStore:
        if self._counters is None:
            self._counters = self._build_counters()
        return self._counters

    @property
    def limits(self) -> KeyLimits:
        if self._limits is None:
            self._limits = KeyLimits(self.counters, self._clock)
        return self._limits

    @property
    def budgets(self) -> Budgets:
        if self._budgets is None:
            self._budgets = Budgets(self.counters, self._clock)
        return self._budgets

    @property
    def usage(self) -> UsageLedger:
        if self._usage is None:
            self._usage = self._build_usage()
        return self._usage

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
        spend: SpendCeiling,
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
            taken = await self.take(principal, images, spend)
            try:
                yield guard
            finally:
                await self.give_back(
                    taken,
                    delivered=guard.delivered,
                    cost=guard.cost,
                    succeeded=guard.answered,
                )
                if guard.answered and guard.model is not None:
                    await self.record_usage(
                        principal.name, guard.model, guard.delivered, guard.cost
                    )
        except BaseException as error:
            if ticket is not None:
                await self._forget(ticket, error)
            raise
        if ticket is not None and guard.answered:
            await self._keep(ticket, guard.stored())

    async def take(self, principal: Principal, images: int, spend: SpendCeiling) -> Taken:
        """Reserve ``images`` on the key's limits and hold ``spend`` on its budgets, or raise
        the error the caller sees (nothing stays taken then)."""
        reservation = await self.reserve(principal, images)
        try:
            hold = await self.hold(principal, spend)
        except BaseException:
            await self.settle(reservation, 0)
            raise
        return Taken(reservation, hold)

    async def give_back(
        self, taken: Taken, *, delivered: int, cost: Cost | None, succeeded: bool
    ) -> None:
        """Settle what ``take`` took: undelivered images back, the hold to the actual cost.

        A failure releases the whole hold. A success whose cost is unknown (a fallback model
        without a price served) keeps the hold as spent: the budget errs on the safe side.
        """
        await self.settle(taken.reservation, delivered if succeeded else 0)
        if taken.hold is None:
            return
        actual = 0
        if succeeded:
            actual = cost.micros if cost is not None else taken.hold.micros
        try:
            await self.budgets.settle(taken.hold, actual)
        except Exception as exc:
            # Never fails the caller: a lost settle only leaves the hold counted (safe side).
            logger.warning("could not settle a spend hold", extra={"error": type(exc).__name__})

    async def hold(self, principal: Principal, spend: SpendCeiling) -> SpendHold | None:
        """Hold the most the request may cost on the key's budgets (None: the key has none)."""
        if not principal.has_budget:
            return None
        if spend.usd is None:
            raise ModelNotPriced(
                f"This API key has a spend budget, and the gateway knows no price for the model "
                f"`{spend.model}`, so it cannot keep the key within its budget. Use a model "
                "whose price is known (GET /v1/models lists each model's price).",
                param="model",
            )
        return await self.budgets.hold(principal, to_micros(spend.usd))

    async def record_usage(self, key: str, model: str, images: int, cost: Cost | None) -> None:
        """Add a delivered generation to the usage ledger; never fails or stalls the caller.

        Every answer waits for this write (a Lambda may be frozen right after it answers), so it
        is bounded: while the table is slow or down the images still go out within
        ``USAGE_RECORD_SECONDS``, and the lost entry is logged with what it held.
        """
        day = dt.datetime.fromtimestamp(self._clock(), tz=dt.UTC).date()
        totals = Totals.of(images, cost)
        try:
            async with asyncio.timeout(USAGE_RECORD_SECONDS):
                await self.usage.record(key=key, model=model, day=day, totals=totals)
        except Exception as exc:
            logger.error(
                "could not record usage",
                extra={
                    "error": type(exc).__name__,
                    "client": key,
                    "model": model,
                    "images": images,
                    "cost_micros": totals.cost_micros,
                },
            )

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

    def _build_usage(self) -> UsageLedger:
        settings = self._settings
        if settings.idempotency_table is None:
            return MemoryUsageLedger()
        from imagegw.state.dynamodb import dynamodb_client
        from imagegw.state.usage_dynamodb import DynamoDBUsageLedger

        return DynamoDBUsageLedger(
            settings.idempotency_table,
            client=dynamodb_client,
            retention_days=settings.usage_retention_days,
            clock=self._clock,
        )
