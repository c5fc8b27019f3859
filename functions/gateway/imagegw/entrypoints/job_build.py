"""Which job store and queue a process uses, from its settings (imported on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagegw.observability import in_lambda
from imagegw.settings import Settings
from imagegw.state.jobs.queue import InProcessJobQueue, JobQueue, SqsJobQueue
from imagegw.state.jobs.store import JobStore, MemoryJobStore

if TYPE_CHECKING:
    from imagegw.entrypoints.runtime import Runtime


def build_job_store(settings: Settings) -> JobStore:
    if settings.jobs_table:
        from imagegw.state.jobs.dynamodb import DynamoDBJobStore

        return DynamoDBJobStore(settings.jobs_table)
    return MemoryJobStore()


def build_job_queue(runtime: Runtime) -> JobQueue | None:
    settings = runtime.settings
    if settings.jobs_queue_url:
        return SqsJobQueue(settings.jobs_queue_url)
    if in_lambda():
        # A background task would freeze with the invocation: no async jobs without a queue.
        return None

    async def run(job_id: str) -> object:
        from imagegw.generation.job_runner import process_job

        # One attempt: there is no queue to come back from.
        return await process_job(runtime, job_id, max_receive_count=1)

    return InProcessJobQueue(run)
