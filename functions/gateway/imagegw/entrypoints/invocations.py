"""EventBridge events and direct invocations of the gateway function.

EventBridge (asynchronous: nobody reads the return value) always records its result as a job:
``detail.job_id``, else ``evt-<event id>``, so EventBridge's own retries of the same event find
the same job and never generate twice. With a queue (``IMAGEGW_JOBS_QUEUE_URL``) the job goes to
the worker; without one it runs inside this invocation. The return value is the job as
``GET /v1/images/jobs/{id}`` shows it (useful with ``sam local invoke``).

An EventBridge event must name a client key (``detail.client``): anyone allowed to put events
on the bus can send one, so the event runs as that key (its scopes, models and limits) and only
that key can read the job. An event without one, or naming no known key, is refused before
anything is generated. A direct invocation that names a ``client`` runs as that key too;
without one it runs as ``aws:invoke`` (IAM let the caller invoke the function).

A direct invocation without a ``job_id`` is recorded as the job ``invoke-<request id>`` (the
invocation's request id, which the Invoke API returns to the caller as ``x-amzn-RequestId``,
also for ``--invocation-type Event``) and run here; the return value is the OpenAI-shaped result
(images as URLs) or ``{"error": ...}``. Lambda gives no way to tell an asynchronous invocation
from a synchronous one, so this is what makes an asynchronous invoke's result readable: with
``GET /v1/images/jobs/invoke-<request id>`` by the key it names, or by invoking again with that
``job_id``. A retried event has the same request id: it finds its job and never generates twice.
With a ``job_id`` it is handled like an EventBridge event.

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
from imagegw.errors import GatewayError, JobConflict, MalformedEvent, UnknownClient
from imagegw.generation.deadline import lambda_deadline
from imagegw.generation.edit_jobs import submit_edit_request
from imagegw.generation.job_runner import job_principal, process_job, submit_job
from imagegw.state.auth import SCOPE_GENERATE, Principal, principal_named
from imagegw.state.jobs.model import (
    EDIT,
    FAILED,
    GENERATION,
    Job,
    is_valid_job_id,
    new_job_id,
    recordable_request,
)

logger = logging.getLogger(__name__)


def links_base_url(runtime: Runtime) -> str:
    """Where links of the gateway's own store point when there is no HTTP request to ask.

    S3 links ignore it; local links are relative unless IMAGEGW_PUBLIC_BASE_URL is set.
    """
    return runtime.settings.public_base_url or ""


async def client_principal(
    runtime: Runtime, generation: GenerationEvent, *, source: str
) -> Principal:
    """Who an event runs as: the key it names, with that key's scopes, models and limits."""
    if generation.client is None:
        if source == "eventbridge":
            raise MalformedEvent(
                "An EventBridge event must name the client key it runs as in 'client' (its "
                "scopes, models and limits apply, and only it can read the job).",
                param="client",
            )
        return event_principal(source)
    principal = principal_named(generation.client, await runtime.key_store.records())
    if principal is None:
        raise UnknownClient(
            f"No client key is named '{generation.client}'. 'client' must be the name of one "
            "of the gateway's API keys.",
            param="client",
        )
    principal.require(SCOPE_GENERATE)
    return principal


async def accept_event_job(
    runtime: Runtime,
    generation: GenerationEvent,
    *,
    source: str,
    job_id: str,
    enqueue: bool,
    owner: Principal | None = None,
) -> Job:
    """Record the event's request as a job (failed at once when the request is bad).

    ``owner`` is who it runs as; without one (SQS messages: the worker cannot read the client
    keys) the named client, or ``aws:<source>``, trusted through IAM.
    """
    if owner is None:
        owner = job_principal(generation.client) if generation.client else event_principal(source)
    try:
        if generation.is_edit:
            return await submit_edit_request(
                runtime, owner, generation.request, source=source, job_id=job_id, enqueue=enqueue
            )
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
    inline: bool = False,
) -> Job:
    """Record the event's request as a job and run it: through the queue, or right here
    (always with ``inline``: the caller may be waiting for the answer)."""
    owner = await client_principal(runtime, generation, source=source)
    queue = runtime.job_queue
    durable = not inline and queue is not None and queue.durable
    job = await accept_event_job(
        runtime, generation, source=source, job_id=job_id, enqueue=durable, owner=owner
    )
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
        request=recordable_request(generation.request.decode("utf-8")),
        kind=EDIT if generation.is_edit else GENERATION,
        source=source,
        created_at=now,
        updated_at=now,
        expires_at=now + runtime.settings.job_retention_seconds,
        error=error.body()["error"],
    )
    if not await runtime.job_store.create(job):
        existing = await runtime.job_store.get(job_id)
        if existing is not None:
            if not existing.same_submission(job.client, job.request):
                # The id is taken by another request: never answer with that one's outcome.
                raise JobConflict(
                    f"The job id '{job_id}' is already used by another request.", param="job_id"
                )
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
    return await job_view(
        job, runtime.image_store, base_url=links_base_url(runtime), now=runtime.clock()
    )


def invoke_job_id(context: Any) -> str:
    """``invoke-<request id>``: the id an asynchronous invoker already knows."""
    job_id = f"invoke-{getattr(context, 'aws_request_id', '')}"
    return job_id if is_valid_job_id(job_id) else new_job_id()


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
        return await job_view(
            job, runtime.image_store, base_url=links_base_url(runtime), now=runtime.clock()
        )
    job = await record_job(
        runtime,
        generation,
        source="invoke",
        job_id=invoke_job_id(context),
        context=context,
        event=event,
        inline=True,
    )
    view = await job_view(
        job, runtime.image_store, base_url=links_base_url(runtime), now=runtime.clock()
    )
    if "result" in view:
        # What a synchronous caller waits for: OpenAI's ImagesResponse, as before.
        return view["result"]
    if "error" in view:
        return {"error": view["error"]}
    return view  # still running (another invocation of the same request id holds it)
