"""Progress an upstream reports while it generates, passed to whoever watches the generation.

A provider calls ``report_progress`` from anywhere inside ``generate`` (a polling loop, one of
``n`` fan-out calls finishing): a context variable carries the watcher, so tasks the provider
starts inherit it and no signature changes. Nobody watching: a no-op. ``ImageProvider.stream``
(``base.py``) is the watcher of a streamed generation; it turns reports into ``Progress`` events.

Report only what the upstream said (its state word, images finished, a percentage it gave):
nothing here makes numbers up, and neither may a provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """What the upstream reported: a stage (its own word, e.g. BFL's ``Pending``), images done
    of the request's ``n``, a percentage. ``None``: the upstream said nothing about it."""

    stage: str | None = None
    images_done: int | None = None
    percent: float | None = None


ProgressSink = Callable[[Progress], None]
_sink: ContextVar[ProgressSink | None] = ContextVar("imagegw_progress_sink", default=None)


def report_progress(
    *, stage: str | None = None, images_done: int | None = None, percent: float | None = None
) -> None:
    """Tell whoever is watching this generation what the upstream reported (nobody: no-op)."""
    sink = _sink.get()
    if sink is not None:
        sink(Progress(stage=stage, images_done=images_done, percent=percent))


@contextmanager
def watching(sink: ProgressSink) -> Iterator[None]:
    """Reports made in this context (and in tasks created in it) go to ``sink``."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
