"""What a provider streams while it generates: partial images, progress, then the result.

``ImageProvider.stream`` yields these events, ending with exactly one ``Completed`` (or raising a
``GatewayError``). The gateway turns them into OpenAI's ``image_generation.*`` SSE events for a
``stream: true`` request, and into a job's ``progress`` for async jobs.

Nothing here is invented: a provider yields ``PartialImage`` only for images its upstream (or,
for ``local/*``, its own renderer) really produced, and ``Progress`` only for what the upstream
reports (a polling state, a percentage, one of ``n`` fan-out calls finished). Providers that
only know the final answer get the default ``stream``: ``generate`` in a task, with whatever it
reports through ``report_progress`` (a context variable, so a polling loop or a fan-out deep
inside ``generate`` reports without any change to its signature), then ``Completed``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagegw.providers.base import GeneratedImage, ImageResult

# Most partial images a request may ask for (OpenAI's limit).
MAX_PARTIAL_IMAGES = 3


@dataclass(frozen=True)
class PartialImage:
    """A real intermediate image. ``index`` counts from 0; ``fields`` are the upstream's own
    event fields besides the image (size, quality, background, output_format, created_at), kept
    so that a relayed event says what the upstream said."""

    index: int
    image: GeneratedImage
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """What the upstream reported: a stage (its own word, e.g. BFL's ``Pending``), images done
    of the request's ``n``, a percentage. ``None``: the upstream said nothing about it."""

    stage: str | None = None
    images_done: int | None = None
    percent: float | None = None


@dataclass(frozen=True)
class Completed:
    result: ImageResult


StreamEvent = PartialImage | Progress | Completed

ProgressSink = Callable[[Progress], None]
_sink: ContextVar[ProgressSink | None] = ContextVar("imagegw_progress_sink", default=None)


def report_progress(
    *, stage: str | None = None, images_done: int | None = None, percent: float | None = None
) -> None:
    """Tell whoever is watching this generation what the upstream reported (nobody: no-op).

    Call it from anywhere inside ``generate`` (tasks it starts inherit the watcher). Report only
    what the upstream said: a percentage the upstream never gave must not be made up.
    """
    sink = _sink.get()
    if sink is not None:
        sink(Progress(stage=stage, images_done=images_done, percent=percent))


async def events_of(run: Callable[[], Awaitable[ImageResult]]) -> AsyncGenerator[StreamEvent, None]:
    """``run()`` (a provider's ``generate``) as a stream: its reported progress, then the result.

    ``run`` runs in a task of its own with the progress watcher set, so that its reports reach
    the consumer while it is still running; closing the stream early cancels it.
    """
    queue: asyncio.Queue[Progress] = asyncio.Queue()
    token = _sink.set(queue.put_nowait)
    try:
        task = asyncio.ensure_future(run())
    finally:
        # The task copied the context (with the watcher) when it was created.
        _sink.reset(token)
    try:
        while not task.done():
            waiter = asyncio.ensure_future(queue.get())
            await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
            if waiter.done():
                yield waiter.result()
            else:
                waiter.cancel()
        while not queue.empty():
            yield queue.get_nowait()
        yield Completed(task.result())
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
