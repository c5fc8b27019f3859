"""Per-key limits in images: reserved for n, given back for what was not delivered."""

from __future__ import annotations

import pytest

from imagegw.errors import InvalidValue, QuotaExceeded, RateLimited
from imagegw.state.auth import ApiKeyRecord, Principal
from imagegw.state.limits import KeyLimits, MemoryCounterStore

from support.fakes import FakeClock

pytestmark = pytest.mark.anyio

# 2026-11-22 12:00:00 UTC (support.fakes.NOW) is a minute boundary; start 15 s into the minute.
START = 15.0


def principal(rate: int | None = None, quota: int | None = None) -> Principal:
    return Principal(name="team-a", scopes=frozenset({"*"}), models=None, rate=rate, quota=quota)


@pytest.fixture
def clock() -> FakeClock:
    clock = FakeClock()
    clock.now += START
    return clock


@pytest.fixture
def counters(clock: FakeClock) -> MemoryCounterStore:
    return MemoryCounterStore(clock)


@pytest.fixture
def limits(counters: MemoryCounterStore, clock: FakeClock) -> KeyLimits:
    return KeyLimits(counters, clock)


async def test_the_rate_counts_images_not_requests(limits: KeyLimits) -> None:
    key = principal(rate=5)
    await limits.reserve(key, 3)
    await limits.reserve(key, 2)
    with pytest.raises(RateLimited) as caught:
        await limits.reserve(key, 1)
    error = caught.value
    assert error.status == 429
    assert error.code == "rate_limit_exceeded"
    assert error.headers["retry-after"] == "45"  # the rest of the minute
    assert error.response_headers()["x-should-retry"] == "true"
    assert "5 images per minute" in error.message


async def test_a_new_minute_starts_a_new_count(limits: KeyLimits, clock: FakeClock) -> None:
    key = principal(rate=2)
    await limits.reserve(key, 2)
    clock.now += 45
    await limits.reserve(key, 2)


async def test_undelivered_images_are_given_back(
    limits: KeyLimits, counters: MemoryCounterStore
) -> None:
    key = principal(rate=4, quota=100)
    reservation = await limits.reserve(key, 4)
    assert [counters.value(name) for name in reservation.counters] == [4, 4]
    await limits.settle(reservation, delivered=1)
    assert [counters.value(name) for name in reservation.counters] == [1, 1]
    await limits.reserve(key, 3)  # the three given back are usable again


async def test_a_failed_request_gives_everything_back(
    limits: KeyLimits, counters: MemoryCounterStore
) -> None:
    reservation = await limits.reserve(principal(rate=4), 4)
    await limits.settle(reservation, delivered=0)
    assert counters.value(reservation.counters[0]) == 0


async def test_the_quota_is_insufficient_quota_and_not_worth_retrying(limits: KeyLimits) -> None:
    key = principal(quota=10)
    await limits.reserve(key, 8)
    with pytest.raises(QuotaExceeded) as caught:
        await limits.reserve(key, 3)
    error = caught.value
    assert (error.status, error.code, error.error_type) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert error.response_headers()["x-should-retry"] == "false"
    # Seconds until 00:00 UTC on 2026-11-23.
    assert error.headers["retry-after"] == str(12 * 3600 - int(START))


async def test_over_quota_gives_the_rate_back(
    limits: KeyLimits, counters: MemoryCounterStore, clock: FakeClock
) -> None:
    key = principal(rate=10, quota=2)
    await limits.reserve(key, 2)
    with pytest.raises(QuotaExceeded):
        await limits.reserve(key, 2)
    rate_counter = f"limit#team-a#rate#{int(clock.now // 60)}"
    assert counters.value(rate_counter) == 2


async def test_more_images_than_the_limit_allows_at_all_is_a_400(limits: KeyLimits) -> None:
    with pytest.raises(InvalidValue) as caught:
        await limits.reserve(principal(rate=2), 3)
    assert caught.value.param == "n"
    assert "at most 2 images per minute" in caught.value.message


async def test_keys_are_counted_separately(limits: KeyLimits) -> None:
    await limits.reserve(principal(rate=1), 1)
    other = Principal(name="team-b", scopes=frozenset({"*"}), models=None, rate=1)
    await limits.reserve(other, 1)


async def test_old_windows_are_forgotten(
    limits: KeyLimits, counters: MemoryCounterStore, clock: FakeClock
) -> None:
    reservation = await limits.reserve(principal(rate=3), 3)
    clock.now += 2 * 3600
    await limits.reserve(principal(rate=3), 1)
    assert counters.value(reservation.counters[0]) == 0


def test_key_records_carry_rate_and_quota() -> None:
    record = ApiKeyRecord.from_json({"name": "a", "sha256": "0" * 64, "rate": 5, "quota": 500})
    assert (record.rate, record.quota) == (5, 500)
    plain = ApiKeyRecord.from_json({"name": "b", "sha256": "0" * 64})
    assert (plain.rate, plain.quota) == (None, None)


@pytest.mark.parametrize("value", [0, -1, 1.5, "5", True])
def test_nonsense_limits_are_refused_when_keys_load(value: object) -> None:
    with pytest.raises(ValueError, match="rate"):
        ApiKeyRecord.from_json({"name": "a", "sha256": "0" * 64, "rate": value})
