"""The provider stream contract: the default stream, reported progress, and retries of streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from imagegw.errors import RateLimited, UpstreamError
from imagegw.providers.base import (
    Completed,
    GeneratedImage,
    ImageProvider,
    ImageRequest,
    ImageResult,
    PartialImage,
    StreamEvent,
)
from imagegw.providers.progress import Progress, report_progress
from imagegw.providers.retry import RetryingProvider, RetryPolicy
from providers.conftest import MakeRequest


def _result() -> ImageResult:
    return ImageResult(images=[GeneratedImage(media_type="image/png", data=b"png")])


class Polling(ImageProvider):
    """Reports what an upstream's polling says, from a task of its own (as a fan-out would)."""

    def __init__(self) -> None:
        self.step = asyncio.Event()
        self.seen: list[Progress] = []

    async def generate(self, request: ImageRequest) -> ImageResult:
        report_progress(stage="Pending")

        async def slot() -> None:
            report_progress(images_done=1, percent=50.0)

        await asyncio.gather(slot())
        # The consumer sees the reports while this is still running.
        await self.step.wait()
        return _result()


@pytest.mark.anyio
async def test_default_stream_passes_on_reported_progress_while_generating(
    make_request: MakeRequest,
) -> None:
    provider = Polling()
    events = provider.stream(make_request())
    assert await anext(events) == Progress(stage="Pending")
    assert await anext(events) == Progress(images_done=1, percent=50.0)
    provider.step.set()
    last = await anext(events)
    assert isinstance(last, Completed)
    assert last.result.images[0].data() == b"png"
    with pytest.raises(StopAsyncIteration):
        await anext(events)


class Plain(ImageProvider):
    async def generate(self, request: ImageRequest) -> ImageResult:
        return _result()


@pytest.mark.anyio
async def test_default_stream_of_a_provider_that_reports_nothing_is_the_result_alone(
    make_request: MakeRequest,
) -> None:
    events = [event async for event in Plain().stream(make_request())]
    assert len(events) == 1
    assert isinstance(events[0], Completed)


def test_progress_reported_outside_a_stream_goes_nowhere() -> None:
    report_progress(percent=10.0)  # no watcher: nothing happens, nothing fails


class Failing(ImageProvider):
    async def generate(self, request: ImageRequest) -> ImageResult:
        raise UpstreamError("boom")


@pytest.mark.anyio
async def test_default_stream_raises_what_generate_raises(make_request: MakeRequest) -> None:
    with pytest.raises(UpstreamError):
        async for _ in Failing().stream(make_request()):
            pass


@pytest.mark.anyio
async def test_closing_the_default_stream_early_cancels_the_generation(
    make_request: MakeRequest,
) -> None:
    provider = Polling()
    events = provider.stream(make_request())
    await anext(events)
    await events.aclose()  # the task waiting on provider.step is cancelled, not leaked
    assert not provider.step.is_set()


class Scripted(ImageProvider):
    """Each stream call takes the next script: an error before any event, or events then one."""

    def __init__(self, *scripts: list[StreamEvent | Exception]) -> None:
        self.scripts = list(scripts)
        self.calls = 0

    async def generate(self, request: ImageRequest) -> ImageResult:
        raise AssertionError("streams only")

    async def stream(self, request: ImageRequest) -> AsyncGenerator[StreamEvent, None]:
        self.calls += 1
        for step in self.scripts.pop(0):
            if isinstance(step, Exception):
                raise step
            yield step


async def drain(events: AsyncIterator[StreamEvent], seen: list[StreamEvent]) -> None:
    async for event in events:
        seen.append(event)


async def _no_sleep(seconds: float) -> None:
    return None


def _partial() -> PartialImage:
    return PartialImage(0, GeneratedImage(media_type="image/png", data=b"p"))


@pytest.mark.anyio
async def test_a_stream_refused_before_its_first_event_is_retried(
    make_request: MakeRequest,
) -> None:
    inner = Scripted([RateLimited("slow down")], [_partial(), Completed(_result())])
    retrying = RetryingProvider(inner, RetryPolicy(max_attempts=3), sleep=_no_sleep)
    events = [event async for event in retrying.stream(make_request())]
    assert inner.calls == 2
    assert [type(event) for event in events] == [PartialImage, Completed]


@pytest.mark.anyio
async def test_a_stream_that_failed_after_its_first_event_is_never_repeated(
    make_request: MakeRequest,
) -> None:
    inner = Scripted([_partial(), RateLimited("slow down")], [Completed(_result())])
    retrying = RetryingProvider(inner, RetryPolicy(max_attempts=3), sleep=_no_sleep)
    seen: list[StreamEvent] = []
    with pytest.raises(RateLimited):
        await drain(retrying.stream(make_request()), seen)
    assert inner.calls == 1
    assert [type(event) for event in seen] == [PartialImage]
