"""Retries only where nothing can have been billed, within the request's budget."""

from __future__ import annotations

import pytest

from imagegw.catalog import load_catalog
from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    ModelUnavailable,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.providers.base import GeneratedImage, ImageProvider, ImageRequest, ImageResult
from imagegw.providers.retry import RetryingProvider, RetryPolicy

from support.fakes import TINY_PNG

pytestmark = pytest.mark.anyio

SPEC = load_catalog().get("openai/gpt-image-1.5")
assert SPEC is not None


def request(budget: float = 60.0) -> ImageRequest:
    return ImageRequest(
        spec=SPEC, upstream_model="gpt-image-1.5", prompt="x", n=1, timeout_seconds=budget
    )


def result() -> ImageResult:
    return ImageResult(images=[GeneratedImage(media_type="image/png", data=TINY_PNG)])


class Scripted(ImageProvider):
    """Answers from a script of errors and results; records each request it got."""

    def __init__(self, *script: GatewayError | ImageResult) -> None:
        self.script = list(script)
        self.requests: list[ImageRequest] = []

    async def generate(self, request: ImageRequest) -> ImageResult:
        self.requests.append(request)
        step = self.script.pop(0)
        if isinstance(step, GatewayError):
            raise step
        return step


class Time:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def retrying(
    inner: ImageProvider, time: Time, *, jitter: float = 0.5, **policy: float
) -> RetryingProvider:
    return RetryingProvider(
        inner,
        RetryPolicy(**policy),  # type: ignore[arg-type]
        sleep=time.sleep,
        clock=time.clock,
        jitter=lambda: jitter,
    )


def unreachable() -> UpstreamUnreachable:
    return UpstreamUnreachable("could not connect")


def rate_limited(after: float | None) -> RateLimited:
    return RateLimited("slow down", headers={"retry-after": "5"}, retry_after=after)


async def test_a_connection_that_never_carried_the_request_is_retried() -> None:
    time, inner = Time(), Scripted(unreachable(), unreachable(), result())
    answer = await retrying(inner, time).generate(request())
    assert len(answer.images) == 1
    assert len(inner.requests) == 3
    # Full jitter (0.5 of the ceiling): ceilings 0.5 s then 1 s.
    assert time.sleeps == [0.25, 0.5]


async def test_an_upstream_retry_after_is_honoured() -> None:
    time, inner = Time(), Scripted(rate_limited(2.0), result())
    await retrying(inner, time, jitter=0.5).generate(request())
    assert len(inner.requests) == 2
    assert time.sleeps == [pytest.approx(2.1)]  # what was asked, plus 5 % of jitter


async def test_a_rate_limit_without_retry_after_backs_off() -> None:
    time, inner = Time(), Scripted(rate_limited(None), rate_limited(None), result())
    await retrying(inner, time, jitter=1.0, base_delay_seconds=1.0).generate(request())
    assert time.sleeps == [1.0, 2.0]


async def test_backoff_is_capped() -> None:
    time = Time()
    inner = Scripted(*[unreachable() for _ in range(5)], result())
    policy = {"max_attempts": 6, "base_delay_seconds": 1.0, "max_delay_seconds": 3.0}
    await retrying(inner, time, jitter=1.0, **policy).generate(request())
    assert time.sleeps == [1.0, 2.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize(
    "error",
    [
        UpstreamTimeout("maybe generated"),
        UpstreamError("HTTP 500 after the request was sent"),
        UpstreamBadResponse("truncated"),
        UpstreamAuthFailed("our key"),
        ContentPolicyViolation("refused"),
        ServiceUnavailable("out of quota", code="upstream_quota_exhausted"),
        ModelUnavailable("gone"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_failures_that_may_have_billed_or_will_not_change_are_not_retried(
    error: GatewayError,
) -> None:
    time, inner = Time(), Scripted(error, result())
    with pytest.raises(type(error)):
        await retrying(inner, time).generate(request())
    assert len(inner.requests) == 1
    assert time.sleeps == []


async def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    time = Time()
    inner = Scripted(unreachable(), unreachable(), UpstreamUnreachable("third"), result())
    with pytest.raises(UpstreamUnreachable, match="third"):
        await retrying(inner, time, max_attempts=3).generate(request())
    assert len(inner.requests) == 3


async def test_one_attempt_means_no_retry() -> None:
    time, inner = Time(), Scripted(unreachable(), result())
    with pytest.raises(UpstreamUnreachable):
        await retrying(inner, time, max_attempts=1).generate(request())
    assert len(inner.requests) == 1


async def test_a_retry_after_longer_than_the_budget_goes_back_to_the_caller() -> None:
    time, inner = Time(), Scripted(rate_limited(30.0), result())
    with pytest.raises(RateLimited) as caught:
        await retrying(inner, time).generate(request(budget=20.0))
    assert caught.value.headers["retry-after"] == "5"  # the caller's own advice is intact
    assert len(inner.requests) == 1
    assert time.sleeps == []


async def test_no_attempt_starts_without_time_for_it() -> None:
    # 0.5 s of backoff would leave 1.5 s, under the 2 s an attempt needs.
    time, inner = Time(), Scripted(unreachable(), result())
    with pytest.raises(UpstreamUnreachable):
        await retrying(inner, time, jitter=1.0).generate(request(budget=2.0))
    assert len(inner.requests) == 1


async def test_each_attempt_gets_only_the_time_that_is_left() -> None:
    time, inner = Time(), Scripted(rate_limited(4.0), rate_limited(4.0), result())
    await retrying(inner, time, jitter=0.0).generate(request(budget=30.0))
    budgets = [sent.timeout_seconds for sent in inner.requests]
    assert budgets == [30.0, 26.0, 22.0]
    assert {sent.prompt for sent in inner.requests} == {"x"}  # the same request otherwise


async def test_the_wrapper_closes_what_it_wraps() -> None:
    class Closing(Scripted):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    inner = Closing()
    await RetryingProvider(inner, RetryPolicy()).aclose()
    assert inner.closed
