"""Upstream retries that cannot bill twice: a wrapper around any ``ImageProvider``.

An image generation is billed when the upstream runs it, so a call is repeated only when the
failure proves it did not run: the connection failed before the request was sent
(``UpstreamUnreachable``) or the upstream refused it with a rate limit (``RateLimited``). These
are exactly the errors whose ``should_retry`` is true, which is also what ``x-should-retry`` tells
OpenAI clients: the gateway follows the advice it gives. An ambiguous timeout, a 5xx after the
request was sent, or a malformed answer may each hide a billed image and are never repeated.

Retries stay inside the request's whole-call budget (``ImageRequest.timeout_seconds``): each
attempt gets the time that is left, an upstream ``Retry-After`` is honoured only when the wait
still leaves room for a real attempt, and otherwise the error goes to the caller at once (with
its ``Retry-After``), so the caller decides instead of a Lambda timing out mid-wait.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace

from imagegw.errors import GatewayError, RateLimited
from imagegw.providers.base import ImageProvider, ImageRequest, ImageResult, StreamEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 8.0
    # No attempt starts with less time than this left: it could only end in a timeout, and a
    # timeout is ambiguous (maybe billed), which is worse than the clean error in hand.
    min_attempt_seconds: float = 2.0

    def delay(self, error: GatewayError, attempt: int, jitter: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when ``error`` is final.

        ``jitter`` is uniform in [0, 1). Without an upstream ``Retry-After`` the wait is "full
        jitter" exponential backoff, so that callers rate-limited together do not return
        together; with one, the wait is at least what the upstream asked, plus up to 10 %.
        """
        if not error.should_retry or attempt >= self.max_attempts:
            return None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after * (1.0 + 0.1 * jitter)
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2.0 ** (attempt - 1))
        return ceiling * jitter


class RetryingProvider(ImageProvider):
    """``inner`` with the retry policy applied; providers need not know it exists."""

    def __init__(
        self,
        inner: ImageProvider,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    async def generate(self, request: ImageRequest) -> ImageResult:
        deadline = self._clock() + request.timeout_seconds
        attempt = 1
        while True:
            try:
                return await self.inner.generate(request)
            except GatewayError as error:
                delay = self._delay(error, attempt, deadline)
                if delay is None:
                    raise
                logger.info(
                    "retrying upstream call",
                    extra={
                        "attempt": attempt,
                        "error_code": error.code,
                        "delay_ms": round(delay * 1000),
                    },
                )
            await self._sleep(delay)
            attempt += 1
            request = replace(request, timeout_seconds=deadline - self._clock())

    async def stream(self, request: ImageRequest) -> AsyncGenerator[StreamEvent, None]:
        """The same policy for a stream, up to its first event: after that the caller has
        seen part of an answer (and the upstream is running it), so nothing is repeated."""
        deadline = self._clock() + request.timeout_seconds
        attempt = 1
        while True:
            async with aclosing(self.inner.stream(request)) as events:
                try:
                    first = await anext(events)
                except GatewayError as error:
                    delay = self._delay(error, attempt, deadline)
                    if delay is None:
                        raise
                    logger.info(
                        "retrying upstream stream",
                        extra={
                            "attempt": attempt,
                            "error_code": error.code,
                            "delay_ms": round(delay * 1000),
                        },
                    )
                else:
                    yield first
                    async for event in events:
                        yield event
                    return
            await self._sleep(delay)
            attempt += 1
            request = replace(request, timeout_seconds=deadline - self._clock())

    def _delay(self, error: GatewayError, attempt: int, deadline: float) -> float | None:
        delay = self.policy.delay(error, attempt, self._jitter())
        if delay is None:
            return None
        if self._clock() + delay + self.policy.min_attempt_seconds > deadline:
            return None
        return delay

    async def aclose(self) -> None:
        await self.inner.aclose()
