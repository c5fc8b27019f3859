"""``fanout.collect``: what a batch with no image raises, as the retry table will read it."""

from __future__ import annotations

import asyncio

import pytest

from imagegw.errors import GatewayError, RateLimited, UpstreamError, UpstreamTimeout
from imagegw.providers.fanout import Slot, collect


def _collect(*errors: GatewayError) -> None:
    """``collect`` over calls that each failed with one of ``errors``."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        calls: list[asyncio.Future[Slot]] = []
        for error in errors:
            future: asyncio.Future[Slot] = loop.create_future()
            future.set_exception(error)
            calls.append(future)
        try:
            collect(
                calls,
                n=len(errors),
                too_slow=lambda: UpstreamTimeout("late"),
                filtered_message="filtered.",
            )
        finally:
            for call in calls:
                call.exception()  # retrieved: no "exception never retrieved" at collection

    asyncio.run(run())


def test_a_batch_with_an_ambiguous_failure_is_never_marked_retryable() -> None:
    # The first call was refused (429: nothing billed), the second may have been billed (5xx):
    # raising the 429 would let the retry table send both again.
    with pytest.raises(UpstreamError) as caught:
        _collect(RateLimited("slow down"), UpstreamError("boom"))
    assert not caught.value.should_retry


def test_a_batch_refused_everywhere_stays_retryable() -> None:
    with pytest.raises(RateLimited):
        _collect(RateLimited("slow down"), RateLimited("slow down"))
