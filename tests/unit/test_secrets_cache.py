"""CachedSecret: time-to-live, the grace period of an outage, retry pacing, what callers see.

The fetch is a plain function the test controls (a value, a change, an outage) and the clock is
a ``FakeClock``; the real Secrets Manager path is in tests/aws/test_secrets.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from imagegw.aws.secrets_cache import CachedSecret
from imagegw.errors import SecretUnavailable

from support.fakes import FakeClock
from support.leaks import LeakWatch

TTL = 300.0
GRACE = 600.0
RETRY = 10.0
ROLE = "provider credentials secret (IMAGEGW_PROVIDER_SECRET_ID)"

pytestmark = pytest.mark.anyio


class Source:
    """Secrets Manager as the cache sees it: a current value, or an outage."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.down = False
        self.fetches = 0

    def __call__(self) -> str:
        self.fetches += 1
        if self.down:
            raise ConnectionError("Could not connect to secretsmanager (and sk-in-an-error-text)")
        return self.value if isinstance(self.value, str) else json.dumps(self.value)


def cached(source: Source, clock: FakeClock) -> CachedSecret:
    return CachedSecret(
        source,
        role=ROLE,
        ttl_seconds=TTL,
        grace_seconds=GRACE,
        retry_seconds=RETRY,
        clock=clock,
    )


async def test_a_rotated_value_is_seen_after_the_ttl_and_not_before() -> None:
    clock = FakeClock(1000.0)
    source = Source({"openai": {"api_key": "sk-old-0000"}})
    secret = cached(source, clock)
    assert (await secret.value())["openai"]["api_key"] == "sk-old-0000"

    source.value = {"openai": {"api_key": "sk-new-1111"}}
    clock.now += TTL - 0.5
    assert (await secret.value())["openai"]["api_key"] == "sk-old-0000"
    clock.now += 0.5
    assert (await secret.value())["openai"]["api_key"] == "sk-new-1111"


async def test_concurrent_first_use_reads_the_secret_once() -> None:
    release = threading.Event()
    fetching = threading.Event()
    source = Source({"keys": []})

    def slow_fetch() -> str:
        fetching.set()
        release.wait(5)
        return source()

    secret = CachedSecret(slow_fetch, role=ROLE, ttl_seconds=TTL, grace_seconds=GRACE)

    async def release_soon() -> None:
        # Once the one fetch is under way, the other callers are already waiting on it.
        await asyncio.to_thread(fetching.wait, 5)
        release.set()

    *values, _ = await asyncio.gather(*(secret.value() for _ in range(5)), release_soon())
    assert all(value == {"keys": []} for value in values)
    assert source.fetches == 1


async def test_an_outage_serves_the_last_value_for_the_grace_period_then_503() -> None:
    clock = FakeClock(1000.0)
    source = Source({"openai": {"api_key": "sk-cached-2222"}})
    secret = cached(source, clock)
    await secret.value()
    source.down = True

    for offset in (TTL, TTL + RETRY, TTL + GRACE / 2, TTL + GRACE - 0.5):
        clock.now = 1000.0 + offset
        assert (await secret.value())["openai"]["api_key"] == "sk-cached-2222"

    clock.now = 1000.0 + TTL + GRACE
    with pytest.raises(SecretUnavailable) as raised:
        await secret.value()
    error = raised.value
    assert error.status == 503
    assert error.code == "secret_unavailable"
    assert ROLE in error.message
    assert "sk-" not in error.message


async def test_after_a_failed_refresh_the_next_attempt_waits_for_the_retry_interval() -> None:
    clock = FakeClock(1000.0)
    source = Source({"v": "first-value"})
    secret = cached(source, clock)
    await secret.value()

    source.down = True
    clock.now += TTL
    assert (await secret.value())["v"] == "first-value"  # refresh failed: cached value
    source.down = False
    source.value = {"v": "second-value"}
    clock.now += RETRY - 0.5
    # Back up, but requests do not all go to a struggling Secrets Manager at once.
    assert (await secret.value())["v"] == "first-value"
    clock.now += 0.5
    assert (await secret.value())["v"] == "second-value"


async def test_without_any_value_the_caller_gets_a_503_naming_the_secret(
    leak_watch: LeakWatch,
) -> None:
    source = Source({})
    source.down = True
    secret = cached(source, FakeClock(1000.0))
    with pytest.raises(SecretUnavailable) as raised:
        await secret.value()
    assert raised.value.status == 503
    assert ROLE in raised.value.message
    assert "sk-in-an-error-text" not in raised.value.message
    leak_watch.secret("sk-in-an-error-text", what="text of the fetch error")


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param('{"openai": {"api_key": "sk-broken-3333"', id="not-json"),
        pytest.param('["sk-broken-3333"]', id="array"),
        pytest.param('"sk-broken-3333"', id="string"),
    ],
)
async def test_a_malformed_secret_is_a_503_that_quotes_none_of_it(
    stored: str, leak_watch: LeakWatch
) -> None:
    secret = cached(Source(stored), FakeClock(1000.0))
    with pytest.raises(SecretUnavailable) as raised:
        await secret.value()
    assert ROLE in raised.value.message
    assert "sk-broken" not in raised.value.message
    leak_watch.secret("sk-broken-3333")


async def test_a_malformed_rotation_keeps_the_last_good_value_within_grace() -> None:
    clock = FakeClock(1000.0)
    source = Source({"openai": {"api_key": "sk-good-4444"}})
    secret = cached(source, clock)
    await secret.value()
    source.value = "{oops"
    clock.now += TTL
    assert (await secret.value())["openai"]["api_key"] == "sk-good-4444"
    clock.now += GRACE
    with pytest.raises(SecretUnavailable):
        await secret.value()


async def test_while_one_refresh_hangs_other_requests_keep_the_cached_value() -> None:
    # A hanging (not refusing) endpoint: the refreshing request waits on it; others must not.
    clock = FakeClock(1000.0)
    source = Source({"openai": {"api_key": "sk-before-3333"}})
    release = threading.Event()
    hanging = threading.Event()
    hang = False

    def fetch() -> str:
        if hang:
            hanging.set()
            release.wait(5)
        return source()

    secret = CachedSecret(
        fetch, role=ROLE, ttl_seconds=TTL, grace_seconds=GRACE, retry_seconds=RETRY, clock=clock
    )
    await secret.value()
    hang = True
    source.value = {"openai": {"api_key": "sk-after-4444"}}
    clock.now += TTL + 1
    refreshing = asyncio.create_task(secret.value())
    assert await asyncio.to_thread(hanging.wait, 5), "the refresh never fetched"
    assert not refreshing.done()
    others = await asyncio.wait_for(asyncio.gather(*(secret.value() for _ in range(3))), 1)
    assert all(value["openai"]["api_key"] == "sk-before-3333" for value in others)
    release.set()
    assert (await refreshing)["openai"]["api_key"] == "sk-after-4444"
