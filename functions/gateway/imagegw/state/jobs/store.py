"""The job store contract, and the in-memory store used without DynamoDB.

Two writes are all the runner needs: create a job if its id is free, and change a job only if it
is still in the state (and lease) the caller saw. Both are single conditional writes in DynamoDB,
which is what makes a redelivered message harmless.
"""

from __future__ import annotations

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
    }
)


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

    async def create(self, job: Job) -> bool:
        if job.id in self._jobs:
            return False
        self._jobs[job.id] = job
        return True

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
        return True
