"""Which job store and queue a process uses, from its settings (imported on first use)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from imagegw.observability import in_lambda
from imagegw.settings import Settings
from imagegw.state.jobs.queue import InProcessJobQueue, JobQueue, SqsJobQueue
from imagegw.state.jobs.store import JobStore, MemoryJobStore


def build_job_store(settings: Settings) -> JobStore:
    if settings.jobs_table:
        from imagegw.state.jobs.dynamodb import DynamoDBJobStore

        return DynamoDBJobStore(settings.jobs_table)
    return MemoryJobStore()


def build_job_queue(
    settings: Settings, run_in_process: Callable[[str], Coroutine[Any, Any, object]]
) -> JobQueue | None:
    """SQS when configured; else, outside Lambda, ``run_in_process`` as a background task."""
    if settings.jobs_queue_url:
        return SqsJobQueue(settings.jobs_queue_url)
    if in_lambda():
        # A background task would freeze with the invocation: no async jobs without a queue.
        return None
    return InProcessJobQueue(run_in_process)
