"""The job store contract, and the in-memory store used without DynamoDB.

Two writes are all the runner needs: create a job if its id is free, and change a job only if it
is still in the state (and lease) the caller saw. Both are single conditional writes in DynamoDB,
which is what makes a redelivered message harmless.
"""

from __future__ import annotations

import asyncio
import dataclasses
from abc import ABC, abstractmethod
from typing import Any

from imagegw.state.jobs.model import Job, Status

# Fields ``transition`` may change.
CHANGEABLE = frozenset(
    {
        "status",
        "updated_at",
        "attempts",
        "lease_token",
        "lease_until",
        "result",
        "error",
        "last_error",
        "progress",
    }
)
# How often ``JobStore.changed`` looks again where the store cannot say when a job changes.
POLL_SECONDS = 1.0


class JobStore(ABC):
    @abstractmethod
    async def create(self, job: Job) -> bool:
        """Store ``job`` unless its id exists; False when it does."""

    @abstractmethod
    async def get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    async def transition(
        self, job_id: str, *, expect: Status, token: str | None, changes: dict[str, Any]
    ) -> bool:
        """Apply ``changes`` if the job has status ``expect`` (and lease ``token`` when given).

        A ``None`` value removes the field. False when the condition did not hold.
        """

    async def changed(self, job_id: str, seen: Job | None, *, wait_seconds: float) -> Job | None:
        """The job once it differs from ``seen`` (``None``: gone); ``seen`` if it did not change.

        Stores shared between processes (DynamoDB) cannot tell when another process writes, so
        this reads again every ``POLL_SECONDS``; the in-memory store answers at once.
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + wait_seconds
        while True:
            current = await self.get(job_id)
            if current != seen:
                return current
            left = give_up - loop.time()
            if left <= 0:
                return seen
            await asyncio.sleep(min(POLL_SECONDS, left))


def check_changes(changes: dict[str, Any]) -> None:
    unknown = set(changes) - CHANGEABLE
    if unknown:
        raise ValueError(f"fields that cannot change: {sorted(unknown)}")


class MemoryJobStore(JobStore):
    """Jobs in process memory: for ``make dev`` and tests. Lost when the process ends.

    No lock: nothing below awaits between the check and the write, so on one event loop each
    method is atomic.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        # Set (and dropped) when the job changes: what ``changed`` waits on.
        self._changes: dict[str, asyncio.Event] = {}

    async def create(self, job: Job) -> bool:
        if job.id in self._jobs:
            return False
        self._jobs[job.id] = job
        self._announce(job.id)
        return True

    async def changed(self, job_id: str, seen: Job | None, *, wait_seconds: float) -> Job | None:
        if self._jobs.get(job_id) != seen:
            return self._jobs.get(job_id)
        change = self._changes.setdefault(job_id, asyncio.Event())
        try:
            await asyncio.wait_for(change.wait(), wait_seconds)
        except TimeoutError:
            return seen
        return self._jobs.get(job_id)

    def _announce(self, job_id: str) -> None:
        change = self._changes.pop(job_id, None)
        if change is not None:
            change.set()

    async def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    async def transition(
        self, job_id: str, *, expect: Status, token: str | None, changes: dict[str, Any]
    ) -> bool:
        check_changes(changes)
        job = self._jobs.get(job_id)
        if job is None or job.status != expect:
            return False
        if token is not None and job.lease_token != token:
            return False
        self._jobs[job_id] = dataclasses.replace(job, **changes)
        self._announce(job_id)
        return True
