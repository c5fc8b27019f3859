"""EventBridge events and direct invocations of the gateway function.

EventBridge (asynchronous: nobody reads the return value) always records its result as a job:
``detail.job_id``, else ``evt-<event id>``, so EventBridge's own retries of the same event find
the same job and never generate twice. With a queue (``IMAGEGW_JOBS_QUEUE_URL``) the job goes to
the worker; without one it runs inside this invocation. The return value is the job as
``GET /v1/images/jobs/{id}`` shows it (useful with ``sam local invoke``).

A direct invocation (``aws lambda invoke``, another service's SDK call) without a ``job_id`` is
synchronous: it returns the OpenAI-shaped result. Images come as URLs unless the request says
``"response_format": "b64_json"``: an invocation's response is capped at 6 MB, which one large
image in base64 can exceed. With a ``job_id`` it is handled like an EventBridge event.

Failures come back as ``{"error": {...}}`` (OpenAI's error object), never as a raise: a raise
would make Lambda's asynchronous invocation retry a request that will fail the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from imagegw.api.job_view import job_view
from imagegw.entrypoints.events import (
    GenerationEvent,
    event_principal,
    generation_event,
)
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import GatewayError, JobConflict
from imagegw.fastpath import jsonbody
from imagegw.generation.deadline import lambda_deadline
from imagegw.generation.delivery_policy import DIRECT_INVOKE_DELIVERY
from imagegw.generation.job_runner import job_principal, process_job, submit_job
from imagegw.generation.service import generate_images
from imagegw.state.jobs.model import FAILED, Job, new_job_id

logger = logging.getLogger(__name__)


def links_base_url(runtime: Runtime) -> str:
    """Where links of the gateway's own store point when there is no HTTP request to ask.

    S3 links ignore it; local links are relative unless IMAGEGW_PUBLIC_BASE_URL is set.
    """
    return runtime.settings.public_base_url or ""


async def accept_event_job(
    runtime: Runtime, generation: GenerationEvent, *, source: str, job_id: str, enqueue: bool
) -> Job:
    """Record the event's request as a job (failed at once when the request is bad)."""
    owner = job_principal(generation.client) if generation.client else event_principal(source)
    try:
        return await submit_job(
            runtime, owner, generation.request, source=source, job_id=job_id, enqueue=enqueue
        )
    except GatewayError as exc:
        if exc.status >= 500 or isinstance(exc, JobConflict):
            raise
        # A bad request: the sender's only way to learn about it is the job, so record it.
        return await record_failed_job(runtime, job_id, owner.name, generation, source, exc)


async def record_job(
    runtime: Runtime,
    generation: GenerationEvent,
    *,
    source: str,
    job_id: str,
    context: Any,
    event: Any,
) -> Job:
    """Record the event's request as a job and run it: through the queue, or right here."""
    queue = runtime.job_queue
    durable = queue is not None and queue.durable
    job = await accept_event_job(runtime, generation, source=source, job_id=job_id, enqueue=durable)
    if durable or job.finished:
        return job
    deadline = lambda_deadline(
        context, event, gateway_timeout=runtime.settings.api_gateway_timeout_seconds
    )
    processed = await process_job(runtime, job.id, max_receive_count=1, deadline=deadline)
    return processed.job or job


async def record_failed_job(
    runtime: Runtime,
    job_id: str,
    client: str,
    generation: GenerationEvent,
    source: str,
    error: GatewayError,
) -> Job:
    now = int(runtime.clock())
    job = Job(
        id=job_id,
        client=client,
        status=FAILED,
        request=generation.request.decode("utf-8"),
        source=source,
        created_at=now,
        updated_at=now,
        expires_at=now + runtime.settings.jobs_retention_seconds,
        error=error.body()["error"],
    )
    if not await runtime.job_store.create(job):
        existing = await runtime.job_store.get(job_id)
        if existing is not None:
            return existing
    logger.info("event request refused", extra={"job_id": job_id, "code": error.code})
    return job


async def handle_eventbridge(runtime: Runtime, event: dict[str, Any], context: Any) -> Any:
    generation = generation_event(event.get("detail"), where="EventBridge event's detail")
    event_id = event.get("id")
    job_id = generation.job_id or (f"evt-{event_id}" if isinstance(event_id, str) else None)
    job = await record_job(
        runtime,
        generation,
        source="eventbridge",
        job_id=job_id or new_job_id(),
        context=context,
        event=event,
    )
    return await job_view(job, runtime.image_store, base_url=links_base_url(runtime))


async def handle_direct(runtime: Runtime, event: Any, context: Any) -> Any:
    generation = generation_event(event, where="invocation payload", bare_allowed=True)
    if generation.job_id is not None:
        job = await record_job(
            runtime,
            generation,
            source="invoke",
            job_id=generation.job_id,
            context=context,
            event=event,
        )
        return await job_view(job, runtime.image_store, base_url=links_base_url(runtime))
    principal = event_principal("lambda")
    outcome = await generate_images(
        runtime,
        principal,
        generation.request,
        base_url=links_base_url(runtime),
        delivery=DIRECT_INVOKE_DELIVERY,
        deadline=lambda_deadline(
            context, event, gateway_timeout=runtime.settings.api_gateway_timeout_seconds
        ),
    )
    # The Lambda runtime serializes this with json.dumps: images as plain strings.
    return jsonbody.plain(outcome.body)
