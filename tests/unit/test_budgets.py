"""Spend budgets: holds, settles and releases on the key's day and month counters."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest

from imagegw.errors import BudgetExceeded
from imagegw.state.auth import Principal
from imagegw.state.budgets import RENEWS_HEADER, Budgets, SpendHold
from imagegw.state.limits import MemoryCounterStore

from support.fakes import NOW, FakeClock

pytestmark = pytest.mark.anyio

DAY = "spend#team-a#day#2026-11-22"
MONTH = "spend#team-a#month#2026-11"


def key(daily: int | None = None, monthly: int | None = None) -> Principal:
    return Principal(
        name="team-a",
        scopes=frozenset({"*"}),
        models=None,
        daily_budget_micros=daily,
        monthly_budget_micros=monthly,
    )


@pytest.fixture
def store(clock: FakeClock) -> MemoryCounterStore:
    return MemoryCounterStore(clock)


@pytest.fixture
def budgets(store: MemoryCounterStore, clock: FakeClock) -> Budgets:
    return Budgets(store, clock)


async def test_a_key_without_a_budget_holds_nothing(budgets: Budgets) -> None:
    assert await budgets.hold(key(), 10_000_000) is None


async def test_holds_take_room_and_settles_give_back_what_was_not_spent(
    budgets: Budgets, store: MemoryCounterStore
) -> None:
    hold = await budgets.hold(key(daily=1_000_000, monthly=5_000_000), 422_000)
    assert hold == SpendHold((DAY, MONTH), 422_000)
    assert (store.value(DAY), store.value(MONTH)) == (422_000, 422_000)
    await budgets.settle(hold, 125_170)
    assert (store.value(DAY), store.value(MONTH)) == (125_170, 125_170)


async def test_a_release_gives_the_whole_hold_back(
    budgets: Budgets, store: MemoryCounterStore
) -> None:
    hold = await budgets.hold(key(daily=1_000_000), 600_000)
    assert hold is not None
    await budgets.release(hold)
    assert store.value(DAY) == 0
    assert await budgets.hold(key(daily=1_000_000), 1_000_000) is not None


async def test_over_the_daily_budget_is_a_402_that_says_when_it_renews(budgets: Budgets) -> None:
    await budgets.hold(key(daily=1_000_000), 900_000)
    with pytest.raises(BudgetExceeded) as caught:
        await budgets.hold(key(daily=1_000_000), 200_000)
    error = caught.value
    assert (error.status, error.error_type, error.code) == (
        402,
        "billing_error",
        "insufficient_balance",
    )
    assert error.response_headers()["x-should-retry"] == "false"
    assert error.headers[RENEWS_HEADER] == "2026-11-23T00:00:00Z"
    assert "daily spend budget of $1.00" in error.message
    assert "may cost up to $0.20" in error.message
    assert "renews at 2026-11-23T00:00:00Z" in error.message


async def test_the_monthly_budget_renews_on_the_first_of_the_next_month(
    clock: FakeClock, budgets: Budgets, store: MemoryCounterStore
) -> None:
    clock.now = dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC).timestamp()
    await budgets.hold(key(monthly=500_000), 500_000)
    with pytest.raises(BudgetExceeded) as caught:
        await budgets.hold(key(monthly=500_000), 1)
    assert caught.value.headers[RENEWS_HEADER] == "2027-01-01T00:00:00Z"
    assert "monthly spend budget of $0.50" in caught.value.message
    # A new month is a new counter.
    clock.now += 3600
    assert await budgets.hold(key(monthly=500_000), 500_000) is not None
    assert store.value("spend#team-a#month#2027-01") == 500_000


async def test_a_request_dearer_than_the_whole_budget_says_so(budgets: Budgets) -> None:
    with pytest.raises(BudgetExceeded) as caught:
        await budgets.hold(key(daily=100_000), 4_280_000)
    assert "more than this API key's daily spend budget of $0.10 allows at all" in (
        caught.value.message
    )


async def test_a_monthly_refusal_gives_the_daily_hold_back(
    budgets: Budgets, store: MemoryCounterStore
) -> None:
    await budgets.hold(key(daily=10_000_000, monthly=1_000_000), 800_000)
    with pytest.raises(BudgetExceeded):
        await budgets.hold(key(daily=10_000_000, monthly=1_000_000), 300_000)
    assert store.value(DAY) == 800_000


async def test_a_hold_settles_on_the_day_it_was_taken(
    clock: FakeClock, budgets: Budgets, store: MemoryCounterStore
) -> None:
    clock.now = dt.datetime(2026, 11, 22, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    hold = await budgets.hold(key(daily=1_000_000), 400_000)
    assert hold is not None
    clock.now += 10  # past midnight
    await budgets.settle(hold, 100_000)
    assert store.value(DAY) == 100_000
    assert store.value("spend#team-a#day#2026-11-23") == 0


async def test_racing_requests_never_overspend(budgets: Budgets, store: MemoryCounterStore) -> None:
    """Many requests race for the last dollar; each settles at most what it held.

    Requests hold, yield to the others a random number of times (so holds, refusals and settles
    interleave), then settle a random part of their hold. At every step the counter stays within
    the budget, and in the end it is exactly what was spent.
    """
    budget = 1_000_000
    principal = key(daily=budget)
    rng = random.Random(17)  # noqa: S311 - a repeatable race, not a secret
    holds = [rng.randrange(50_000, 300_000) for _ in range(80)]
    spent: list[int] = []
    refused = 0
    highest = 0

    async def request(hold_micros: int) -> None:
        nonlocal refused, highest
        for _ in range(rng.randrange(4)):
            await asyncio.sleep(0)  # a yield to interleave the racers, not a wait for a state
        try:
            hold = await budgets.hold(principal, hold_micros)
        except BudgetExceeded:
            refused += 1
            return
        assert hold is not None
        highest = max(highest, store.value(DAY))
        for _ in range(rng.randrange(6)):
            await asyncio.sleep(0)  # a yield to interleave the racers, not a wait for a state
        actual = rng.randrange(0, hold_micros + 1)
        await budgets.settle(hold, actual)
        spent.append(actual)

    await asyncio.gather(*(request(micros) for micros in holds))
    assert spent, "no request got through"
    assert refused, "the budget never ran out"
    assert highest <= budget
    assert sum(spent) <= budget
    assert store.value(DAY) == sum(spent)


async def test_holds_round_trip_through_a_job_record() -> None:
    hold = SpendHold((DAY, MONTH), 211_000)
    assert SpendHold.from_json(hold.to_json()) == hold
    with pytest.raises(ValueError, match="spend hold"):
        SpendHold.from_json({"counters": DAY, "micros": "1"})


def test_the_fixed_clock_is_the_suite_day() -> None:
    assert dt.datetime.fromtimestamp(NOW, tz=dt.UTC).date() == dt.date(2026, 11, 22)
