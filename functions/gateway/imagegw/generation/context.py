"""What the generation use case needs from the process that runs it, as an interface.

The entry points build one object that provides these (``entrypoints/runtime.py``) and pass it
down explicitly; nothing in this layer or below imports it, so the dependency points one way:
entry points know the use case, the use case knows only this contract. Tests pass their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from imagegw.catalog import Catalog
from imagegw.settings import Settings
from imagegw.storage import ImageStore

if TYPE_CHECKING:
    import httpx

    from imagegw.generation.reliability import Reliability
    from imagegw.observability import Telemetry
    from imagegw.providers import ImageProvider
    from imagegw.state.jobs.queue import JobQueue
    from imagegw.state.jobs.store import JobStore
    from imagegw.storage.uploads import UploadStore


class GenerationContext(Protocol):
    """Collaborators of one generation: catalog, providers, delivery, guards, telemetry."""

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def catalog(self) -> Catalog: ...

    @property
    def image_store(self) -> ImageStore: ...

    @property
    def reliability(self) -> Reliability: ...

    @property
    def telemetry(self) -> Telemetry: ...

    def today(self) -> dt.date: ...

    async def provider(self, name: str) -> ImageProvider: ...


class EditContext(GenerationContext, Protocol):
    """An edit: where uploaded inputs are read, and the client that fetches allowed URLs."""

    @property
    def upload_store(self) -> UploadStore: ...

    def http(self) -> httpx.AsyncClient: ...


class JobContext(EditContext, Protocol):
    """A generation or an edit that may run later: where jobs are kept and queued."""

    @property
    def job_store(self) -> JobStore: ...

    @property
    def job_queue(self) -> JobQueue | None: ...
