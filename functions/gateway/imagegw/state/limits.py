"""Per-key limits, counted in images: a rate (images per minute) and a quota (images per day).

A key's record may carry ``rate`` and ``quota`` (auth.py). Before the upstream call the request's
``n`` images are reserved on both counters; afterwards the images that were not delivered are
given back, so a caller pays its limits only for what it got.

Counters are fixed windows: the UTC minute for the rate, the UTC day for the quota. A fixed
window lets a key spend up to twice its rate across a minute boundary; in exchange a counter is
one atomic add, which a shared store (DynamoDB, ``dynamodb.py``) does in one conditional write.
Counter names are ``limit#<key name>#rate#<unix minute>`` and ``limit#<key name>#quota#<date>``.

Over the rate is ``429 rate_limit_exceeded`` with ``Retry-After`` (the end of the minute); over
the quota is ``429 insufficient_quota`` (not worth retrying until the next UTC day). A request
for more images than the limit allows at all is a ``400`` naming ``n``.
"""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from imagegw.errors import InvalidValue, QuotaExceeded, RateLimited
from imagegw.state.auth import Principal

MINUTE = 60
DAY = 86_400
# Counters outlive their window a little, so a late refund still finds its counter.
_KEEP_SECONDS = 3_600


class CounterStore(ABC):
    """Named counters shared by every process serving the same keys."""

    @abstractmethod
    async def try_add(self, counter: str, amount: int, *, limit: int, expires_at: int) -> bool:
        """Atomically add ``amount`` unless the total would pass ``limit``; False if it would."""

    @abstractmethod
    async def add(self, counter: str, amount: int) -> None:
        """Add ``amount`` (negative to give images back) without a limit."""


class MemoryCounterStore(CounterStore):
    """One process's counters (development, tests); atomic: no await between read and write."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._counters: dict[str, tuple[int, int]] = {}

    async def try_add(self, counter: str, amount: int, *, limit: int, expires_at: int) -> bool:
        self._forget_expired()
        used, expiry = self._counters.get(counter, (0, expires_at))
        if used + amount > limit:
            return False
        self._counters[counter] = (used + amount, expiry)
        return True

    async def add(self, counter: str, amount: int) -> None:
        used, expiry = self._counters.get(counter, (0, int(self._clock()) + _KEEP_SECONDS))
        self._counters[counter] = (used + amount, expiry)

    def value(self, counter: str) -> int:
        return self._counters.get(counter, (0, 0))[0]

    def _forget_expired(self) -> None:
        now = self._clock()
        for name in [name for name, (_, expiry) in self._counters.items() if expiry <= now]:
            del self._counters[name]


@dataclass(frozen=True)
class Reservation:
    """Images taken from a key's counters for one request, to settle when it is done."""

    counters: tuple[str, ...]
    images: int


class KeyLimits:
    def __init__(self, store: CounterStore, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    async def reserve(self, principal: Principal, images: int) -> Reservation:
        """Take ``images`` from the key's rate and quota, or raise the error the caller sees."""
        now = self._clock()
        taken: list[str] = []
        try:
            if principal.rate is not None:
                _check_possible(images, principal.rate, "per minute")
                window = int(now // MINUTE)
                counter = f"limit#{principal.name}#rate#{window}"
                ends = (window + 1) * MINUTE
                if not await self._store.try_add(
                    counter, images, limit=principal.rate, expires_at=ends + _KEEP_SECONDS
                ):
                    retry_after = max(1, math.ceil(ends - now))
                    raise RateLimited(
                        f"This API key may generate {principal.rate} images per minute and has "
                        f"no room for {images} more in the current minute. Retry after "
                        f"{retry_after} seconds.",
                        headers={"retry-after": str(retry_after)},
                    )
                taken.append(counter)
            if principal.quota is not None:
                _check_possible(images, principal.quota, "per day")
                day = dt.datetime.fromtimestamp(now, tz=dt.UTC).date()
                counter = f"limit#{principal.name}#quota#{day.isoformat()}"
                midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() + DAY
                if not await self._store.try_add(
                    counter, images, limit=principal.quota, expires_at=int(midnight) + _KEEP_SECONDS
                ):
                    raise QuotaExceeded(
                        f"This API key's quota of {principal.quota} images per day (UTC) does "
                        f"not cover {images} more images today. It renews at 00:00 UTC.",
                        headers={"retry-after": str(max(1, math.ceil(midnight - now)))},
                    )
                taken.append(counter)
        except BaseException:
            await self._give_back(taken, images)
            raise
        return Reservation(tuple(taken), images)

    async def settle(self, reservation: Reservation, delivered: int) -> None:
        """Give back the reserved images that were not delivered."""
        await self._give_back(reservation.counters, reservation.images - max(0, delivered))

    async def _give_back(self, counters: tuple[str, ...] | list[str], images: int) -> None:
        if images <= 0:
            return
        for counter in counters:
            await self._store.add(counter, -images)


def _check_possible(images: int, limit: int, period: str) -> None:
    if images > limit:
        raise InvalidValue(
            f"Invalid 'n': {images}. This API key may generate at most {limit} images {period}.",
            param="n",
        )
