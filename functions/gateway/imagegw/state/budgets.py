"""Spend budgets per key: USD per UTC day and per calendar month (UTC), held before, settled after.

A key's record may carry ``daily_budget_usd`` and ``monthly_budget_usd`` (auth.py). Before the
upstream call the request's maximum cost (``catalog.prices.max_cost``) is *held* on both
counters: one atomic conditional add each, which fails when the hold would take the counter past
the budget. After the call the hold is *settled* to what the delivered images cost (a negative
add when they cost less); a failed call *releases* it (settles to zero). Concurrent requests
therefore never spend more than the budget plus the amount by which one settled cost exceeded
its own hold (an edit's input images, which only the upstream counts).

Counters are whole micro-dollars in the same counter store as the image limits (limits.py):
``spend#<key name>#day#<YYYY-MM-DD>`` and ``spend#<key name>#month#<YYYY-MM>``. A hold names the
counters it took, so a request that runs across midnight settles the day it was held on.

Over budget is ``402 billing_error`` / ``insufficient_balance`` with ``x-should-retry: false``
and the time the budget renews (message and ``x-imagegw-budget-renews-at``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from imagegw.catalog.prices import from_micros, usd
from imagegw.errors import BudgetExceeded
from imagegw.state.auth import Principal
from imagegw.state.limits import CounterStore

# Counters outlive their period a little, so a late settle still finds its counter.
_KEEP_SECONDS = 86_400
RENEWS_HEADER = "x-imagegw-budget-renews-at"


@dataclass(frozen=True)
class SpendCeiling:
    """The most a request for ``model`` may cost, in USD; ``usd`` None: its price is unknown."""

    model: str
    usd: Decimal | None


@dataclass(frozen=True)
class SpendHold:
    """Micro-dollars held on a key's budget counters for one request."""

    counters: tuple[str, ...]
    micros: int

    def to_json(self) -> dict[str, object]:
        return {"counters": list(self.counters), "micros": self.micros}

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> SpendHold:
        counters = raw.get("counters")
        micros = raw.get("micros")
        if not isinstance(counters, list) or not isinstance(micros, int):
            raise ValueError("a spend hold is {'counters': [...], 'micros': n}")
        return cls(tuple(str(name) for name in counters), micros)


@dataclass(frozen=True)
class _Period:
    name: str  # "daily" | "monthly"
    counter: str
    budget_micros: int
    renews: dt.datetime


class Budgets:
    def __init__(self, store: CounterStore, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    async def hold(self, principal: Principal, micros: int) -> SpendHold | None:
        """Hold ``micros`` on the key's budgets, or raise ``BudgetExceeded``; None: no budget."""
        periods = self._periods(principal)
        if not periods:
            return None
        taken: list[str] = []
        try:
            for period in periods:
                expires = int(period.renews.timestamp()) + _KEEP_SECONDS
                if micros > period.budget_micros or not await self._store.try_add(
                    period.counter, micros, limit=period.budget_micros, expires_at=expires
                ):
                    raise _exceeded(period, micros)
                taken.append(period.counter)
        except BaseException:
            await self._add(taken, -micros)
            raise
        return SpendHold(tuple(taken), micros)

    async def settle(self, hold: SpendHold, actual_micros: int) -> None:
        """Replace the hold by what was actually spent (0 releases it)."""
        await self._add(hold.counters, actual_micros - hold.micros)

    async def release(self, hold: SpendHold) -> None:
        await self.settle(hold, 0)

    async def _add(self, counters: tuple[str, ...] | list[str], micros: int) -> None:
        if micros == 0:
            return
        for counter in counters:
            await self._store.add(counter, micros)

    def _periods(self, principal: Principal) -> list[_Period]:
        now = dt.datetime.fromtimestamp(self._clock(), tz=dt.UTC)
        day = now.date()
        periods = []
        if principal.daily_budget_micros is not None:
            periods.append(
                _Period(
                    "daily",
                    f"spend#{principal.name}#day#{day.isoformat()}",
                    principal.daily_budget_micros,
                    dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
                )
            )
        if principal.monthly_budget_micros is not None:
            next_month = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
            periods.append(
                _Period(
                    "monthly",
                    f"spend#{principal.name}#month#{day:%Y-%m}",
                    principal.monthly_budget_micros,
                    dt.datetime.combine(next_month, dt.time(), tzinfo=dt.UTC),
                )
            )
        return periods


def _exceeded(period: _Period, micros: int) -> BudgetExceeded:
    budget = usd(from_micros(period.budget_micros))
    renews = period.renews.strftime("%Y-%m-%dT%H:%M:%SZ")
    asked = usd(from_micros(micros))
    if micros > period.budget_micros:
        reason = (
            f"This request may cost up to {asked}, more than this API key's {period.name} spend "
            f"budget of {budget} allows at all. Ask for fewer images, a smaller size or a lower "
            "quality."
        )
    else:
        reason = (
            f"This API key's {period.name} spend budget of {budget} has no room for this "
            f"request, which may cost up to {asked}. The budget renews at {renews}."
        )
    return BudgetExceeded(reason, headers={RENEWS_HEADER: renews})
