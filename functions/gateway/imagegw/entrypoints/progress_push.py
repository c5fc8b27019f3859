"""On AWS, a job's progress pushed to its WebSocket subscribers as the worker records it.

``PushingJobStore`` wraps the job store: after each write that succeeded it reads the job back and
posts it (the WebSocket protocol's ``job.progress`` / ``job.succeeded`` / ``job.failed`` message,
``api/realtime.py``) to every connection subscribed to it, through the API Gateway Management
API (``IMAGEGW_WEBSOCKET_ENDPOINT``). A connection that is gone (410 ``GoneException``) is
forgotten at once; a job that finished forgets its subscribers. A failed push never fails the
write: progress is a courtesy, the job record is what counts, and a subscriber can always read
``GET /v1/images/jobs/{id}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imagegw.api import realtime
from imagegw.api.job_view import job_view
from imagegw.errors import GatewayError
from imagegw.state.jobs.model import Job, Status
from imagegw.state.jobs.store import JobStore

if TYPE_CHECKING:
    from imagegw.api.context import ApiContext

logger = logging.getLogger(__name__)


def management_client(endpoint: str) -> Any:
    from botocore.config import Config

    from imagegw.aws import clients as aws_clients

    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard"})
    return aws_clients.client("apigatewaymanagementapi", endpoint_url=endpoint, config=config)


class ConnectionPusher:
    """Posts messages to WebSocket connections through the Management API."""

    def __init__(self, endpoint: str, *, client: Callable[[str], Any] = management_client) -> None:
        self._endpoint = endpoint
        self._factory = client
        self._client: Any = None

    async def post(self, connection_id: str, message: dict[str, Any]) -> bool:
        """True when delivered or worth trying again later; False when the connection is gone."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            self._client = self._factory(self._endpoint)
        data = realtime.encode(message).encode("utf-8")
        try:
            await asyncio.to_thread(
                self._client.post_to_connection, ConnectionId=connection_id, Data=data
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error.get("Code") == "GoneException" or status == 410:
                return False
            logger.warning("could not push to a connection", extra={"code": error.get("Code")})
        except BotoCoreError as exc:
            logger.warning("could not push to a connection", extra={"error": type(exc).__name__})
        return True


class PushingJobStore(JobStore):
    def __init__(
        self, inner: JobStore, context: ApiContext, *, pusher: ConnectionPusher | None = None
    ) -> None:
        self.inner = inner
        self._context = context
        endpoint = context.settings.websocket_endpoint
        assert endpoint, "only built with IMAGEGW_WEBSOCKET_ENDPOINT"
        self._pusher = pusher or ConnectionPusher(endpoint)

    async def create(self, job: Job) -> bool:
        return await self.inner.create(job)

    async def get(self, job_id: str) -> Job | None:
        return await self.inner.get(job_id)

    async def changed(self, job_id: str, seen: Job | None, *, wait_seconds: float) -> Job | None:
        return await self.inner.changed(job_id, seen, wait_seconds=wait_seconds)

    async def transition(
        self, job_id: str, *, expect: Status, token: str | None, changes: dict[str, Any]
    ) -> bool:
        written = await self.inner.transition(job_id, expect=expect, token=token, changes=changes)
        if written:
            try:
                await self.push(job_id)
            except GatewayError as exc:
                logger.warning("could not push a job's progress", extra={"code": exc.code})
        return written

    async def push(self, job_id: str) -> None:
        store = self._context.realtime_store
        connections = await store.subscribers(job_id)
        if not connections:
            return
        job = await self.inner.get(job_id)
        if job is None:
            return
        base_url = self._context.settings.public_base_url or ""
        view = await job_view(
            job, self._context.image_store, base_url=base_url, now=self._context.clock()
        )
        message = realtime.job_message(job, view)
        for connection_id in connections:
            if not await self._pusher.post(connection_id, message):
                await store.disconnect(connection_id)
            elif job.finished:
                await store.unsubscribe(connection_id, job_id)
