"""What the HTTP layer needs from the process: the use case's collaborators plus client keys.

The app factory (``entrypoints/app.py``) puts the process's runtime on ``app.state``; routes
receive it through ``deps.py`` typed as this interface, never as the concrete class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from imagegw.generation.context import EditContext, JobContext
from imagegw.state.auth import KeyStore

if TYPE_CHECKING:
    # Only the progress WebSocket's routes use it: a cold start does not import it.
    from imagegw.state.realtime import RealtimeStore


class ApiContext(JobContext, EditContext, Protocol):
    @property
    def key_store(self) -> KeyStore: ...

    @property
    def realtime_store(self) -> RealtimeStore: ...
