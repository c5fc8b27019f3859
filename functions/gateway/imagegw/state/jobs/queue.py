"""Where a queued job goes: an SQS message for the worker, or a task of this process.

SQS (``IMAGEGW_JOBS_QUEUE_URL``) is the production path: the message is ``{"job_id": "..."}``,
the worker function (``imagegw.entrypoints.worker.handler``) receives it in a batch.
Without a queue, and outside Lambda, the job runs as a background task of the running server
(``make dev``): good enough for development, lost if the process stops. Under Lambda without a
queue there is no queue at all (a task would freeze with the invocation), and requests are served
synchronously.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any

from imagegw.errors import JobQueueUnavailable

logger = logging.getLogger(__name__)


class JobQueue(ABC):
    # Whether a queued job survives this process (and is retried by someone else).
    durable: bool = False

    @abstractmethod
    async def send(self, job_id: str) -> None:
        """Hand the job to a worker; raise ``JobQueueUnavailable`` when it cannot be sent."""

    async def drain(self) -> None:  # noqa: B027 - only in-process queues have work to wait for
        """Wait for jobs this process is running itself (shutdown, tests)."""


def message_body(job_id: str) -> str:
    return json.dumps({"job_id": job_id})


def default_sqs_client() -> Any:
    import boto3

    return boto3.client("sqs")


class SqsJobQueue(JobQueue):
    durable = True

    def __init__(
        self, queue_url: str, *, client_factory: Callable[[], Any] = default_sqs_client
    ) -> None:
        self._queue_url = queue_url
        self._client_factory = client_factory
        self._client: Any = None

    def _sqs(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    async def send(self, job_id: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await asyncio.to_thread(
                self._sqs().send_message, QueueUrl=self._queue_url, MessageBody=message_body(job_id)
            )
        except (BotoCoreError, ClientError) as exc:
            raise JobQueueUnavailable("The gateway could not queue the job.") from exc

    async def retry_later(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again in ``seconds`` (sooner than the timeout)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await asyncio.to_thread(
                self._sqs().change_message_visibility,
                QueueUrl=self._queue_url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=max(0, min(seconds, 43_200)),
            )
        except (BotoCoreError, ClientError):
            # The message still comes back after the queue's visibility timeout: later, not lost.
            logger.warning("could not shorten the retry delay of a job message")


class InProcessJobQueue(JobQueue):
    """Runs each job as a task of the current event loop (development servers only)."""

    def __init__(self, run: Callable[[str], Coroutine[Any, Any, object]]) -> None:
        self._run = run
        self._tasks: set[asyncio.Task[object]] = set()

    async def send(self, job_id: str) -> None:
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            self._run(job_id), name=f"imagegw-job-{job_id}"
        )
        # The loop only keeps weak references to tasks.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the jobs started so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
