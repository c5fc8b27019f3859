"""Submitting jobs and running each one at most once.

``submit_job`` checks the request as a synchronous call would (a bad request is a 400 now, not
a failed job later), records the job as queued and hands it to the queue.

``process_job`` is what a worker does with a message, whatever delivered it and however often:

- unknown job, or one already succeeded or failed: nothing to do (a redelivery);
- running, lease not expired: another worker has it; come back later (``RETRY``);
- running, lease expired: the worker that had it died mid-generation. The upstream may have
  generated and billed the images, so the job is marked failed (``job_interrupted``) rather
  than generated a second time;
- queued: claim it (a conditional write; losing the race means re-reading), generate, store the
  images, record ``succeeded`` with the image keys, or ``failed`` with the error object.

Only failures that cannot have been billed (the upstream rate-limited the call, or it never
left) give the job back to the queue; on the last delivery (``IMAGEGW_JOBS_MAX_RECEIVE_COUNT``,
the queue's maxReceiveCount) the job is marked failed and the message goes on to the DLQ.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
from contextlib import aclosing
from dataclasses import dataclass
from enum import Enum
from typing import Any

from imagegw.catalog.prices import Cost
from imagegw.errors import GatewayError, JobConflict, JobQueueUnavailable, internal_error
from imagegw.generation import job_progress
from imagegw.generation.context import JobContext
from imagegw.generation.deadline import Deadline
from imagegw.generation.delivery import Delivery
from imagegw.generation.delivery_policy import JOB_DELIVERY
from imagegw.generation.edits import prepare_json_edit
from imagegw.generation.job_progress import JobProgress
from imagegw.generation.reliability import Taken
from imagegw.generation.service import (
    PreparedGeneration,
    account,
    describe,
    prepare_generation,
    run_generation,
    served_model,
    spend_of,
)
from imagegw.generation.streaming import start_stream
from imagegw.logs import correlation_id
from imagegw.providers.base import (
    Completed,
    GeneratedImage,
    ImageResult,
    PartialImage,
    StreamEvent,
    events_of,
)
from imagegw.state.auth import ALL_SCOPES, Principal
from imagegw.state.jobs.model import (
    EDIT,
    FAILED,
    GENERATION,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    new_job_id,
)
from imagegw.storage import ImageStore, new_key

logger = logging.getLogger(__name__)


# How long past its invocation's end a lease is honoured (clock skew between workers).
LEASE_GRACE_SECONDS = 30.0
# Retry delay for a released job when the error names none.
DEFAULT_RETRY_SECONDS = 30


class Disposition(Enum):
    DONE = "done"  # acknowledge the message
    RETRY = "retry"  # leave the message for a later delivery (or the DLQ)


@dataclass(frozen=True)
class Processed:
    disposition: Disposition
    job: Job | None
    retry_after: int | None = None


def job_principal(client: str, models: list[str] | None = None) -> Principal:
    """Who a job runs as: its owner, with every scope (checked when it was submitted) and the
    models the owner's key allowed then (None: all)."""
    allowed = tuple(models) if models is not None else None
    return Principal(name=client, scopes=frozenset({ALL_SCOPES}), models=allowed)


def _new_job(
    runtime: JobContext, job_id: str, owner: Principal, request: str, source: str, kind: str
) -> Job:
    now = int(runtime.clock())
    return Job(
        id=job_id,
        client=owner.name,
        models=list(owner.models) if owner.models is not None else None,
        status=QUEUED,
        request=request,
        kind=kind,
        source=source,
        created_at=now,
        updated_at=now,
        expires_at=now + runtime.settings.job_retention_seconds,
    )


async def submit_job(
    runtime: JobContext,
    principal: Principal,
    raw_body: bytes,
    *,
    source: str = "api",
    job_id: str | None = None,
    enqueue: bool = True,
) -> Job:
    """Check the request, record the job as queued, and (with ``enqueue``) queue it.

    With a ``job_id`` chosen by an event sender the call is idempotent: the same id with the
    same request and owner returns the existing job; with another request it is a 409.
    """
    prepared = prepare_generation(runtime, principal, raw_body, delivery=JOB_DELIVERY)
    return await record_job(
        runtime,
        principal,
        prepared,
        request=raw_body.decode("utf-8"),
        kind=GENERATION,
        source=source,
        job_id=job_id,
        enqueue=enqueue,
    )


async def record_job(
    runtime: JobContext,
    principal: Principal,
    prepared: PreparedGeneration,
    *,
    request: str,
    kind: str,
    source: str = "api",
    job_id: str | None = None,
    enqueue: bool = True,
    submitted: str | None = None,
) -> Job:
    """Record a checked request (``prepared``) as a queued job of ``kind``; with ``enqueue``,
    queue it. ``request`` is the JSON text the worker prepares again when it runs the job;
    ``submitted``, the sender's own text when ``request`` rewrites it (``Job.submitted``)."""
    job = _new_job(runtime, job_id or new_job_id(), principal, request, source, kind)
    job = dataclasses.replace(
        job,
        progress=job_progress.initial(prepared.validated.image_request.n),
        submitted=submitted,
    )
    # Jobs count against the key's limits and budgets like synchronous calls: n images and the
    # most the request may cost are taken now, at submission, and settled when the job ends.
    reliability = runtime.reliability
    taken = await reliability.take(
        principal, prepared.validated.image_request.n, spend_of(runtime, prepared)
    )
    job = dataclasses.replace(job, reserved=taken.to_json())
    store = runtime.job_store
    if not await store.create(job):
        await reliability.give_back(taken, delivered=0, cost=None, succeeded=False)
        existing = await store.get(job.id)
        if existing is None or not existing.same_submission(job.client, job.submitted or request):
            raise JobConflict(
                f"The job id '{job.id}' is already used by another request.", param="job_id"
            )
        return existing
    logger.info("job queued", extra={"job_id": job.id, "client": job.client, "source": source})
    queue = runtime.job_queue
    if enqueue and queue is not None:
        try:
            await queue.send(job.id)
        except JobQueueUnavailable as exc:
            await reliability.give_back(taken, delivered=0, cost=None, succeeded=False)
            await store.transition(
                job.id,
                expect=QUEUED,
                token=None,
                changes={
                    "status": FAILED,
                    "error": exc.body()["error"],
                    "updated_at": int(runtime.clock()),
                },
            )
            raise
    return job


async def store_images(store: ImageStore, images: list[GeneratedImage]) -> list[str]:
    keys = [new_key(image.extension) for image in images]
    await asyncio.gather(
        *(
            store.put(key, image.data(), image.media_type)
            for key, image in zip(keys, images, strict=True)
        )
    )
    return keys


def _lease_seconds(runtime: JobContext, deadline: Deadline | None) -> float:
    if deadline is not None:
        return max(0.0, deadline.at - deadline.clock()) + LEASE_GRACE_SECONDS
    return runtime.settings.upstream_timeout_seconds + LEASE_GRACE_SECONDS


async def process_job(
    runtime: JobContext,
    job_id: str,
    *,
    receive_count: int = 1,
    max_receive_count: int | None = None,
    deadline: Deadline | None = None,
) -> Processed:
    token = correlation_id.set(job_id)
    try:
        return await _process(
            runtime,
            job_id,
            receive_count=receive_count,
            max_receive_count=max_receive_count or runtime.settings.jobs_max_receive_count,
            deadline=deadline,
        )
    finally:
        correlation_id.reset(token)


async def _process(
    runtime: JobContext,
    job_id: str,
    *,
    receive_count: int,
    max_receive_count: int,
    deadline: Deadline | None,
) -> Processed:
    store = runtime.job_store
    # Two rounds: losing the claim race means someone else changed the job; look again once.
    for _ in range(2):
        job = await store.get(job_id)
        if job is None:
            logger.warning("job not found; the message is dropped", extra={"job_id": job_id})
            return Processed(Disposition.DONE, None)
        if job.finished:
            logger.info("job already finished; nothing to do", extra={"job_id": job_id})
            return Processed(Disposition.DONE, job)
        now = runtime.clock()
        if job.status == RUNNING:
            if job.lease_until is not None and job.lease_until > now:
                wait = int(job.lease_until - now) + 1
                return Processed(Disposition.RETRY, job, retry_after=wait)
            return await _interrupted(runtime, job)
        lease = secrets.token_hex(16)
        claimed = await store.transition(
            job_id,
            expect=QUEUED,
            token=None,
            changes={
                "status": RUNNING,
                "attempts": job.attempts + 1,
                "lease_token": lease,
                "lease_until": now + _lease_seconds(runtime, deadline),
                "updated_at": int(now),
                "progress": job_progress.at(job.progress, job_progress.GENERATING),
            },
        )
        if claimed:
            final = receive_count >= max_receive_count
            return await _run(runtime, job, lease, final=final, deadline=deadline)
    return Processed(Disposition.RETRY, await store.get(job_id), retry_after=1)


async def _interrupted(runtime: JobContext, job: Job) -> Processed:
    error = GatewayError(
        "The worker running this job stopped before it finished. The upstream may already "
        "have generated (and billed) the images, so the gateway does not generate them again; "
        "submit the request again if you still want it.",
        code="job_interrupted",
    )
    await runtime.job_store.transition(
        job.id,
        expect=RUNNING,
        token=job.lease_token,
        changes={
            "status": FAILED,
            "error": error.body()["error"],
            "lease_token": None,
            "lease_until": None,
            "updated_at": int(runtime.clock()),
            "progress": job_progress.at(job.progress, job_progress.FAILED_STAGE),
        },
    )
    logger.warning("job interrupted; marked failed", extra={"job_id": job.id})
    return Processed(Disposition.DONE, await runtime.job_store.get(job.id))


async def _finish(runtime: JobContext, job: Job, lease: str, changes: dict[str, Any]) -> Job | None:
    changes = {**changes, "lease_token": None, "lease_until": None}
    changes["updated_at"] = int(runtime.clock())
    store = runtime.job_store
    if not await store.transition(job.id, expect=RUNNING, token=lease, changes=changes):
        logger.warning("job changed while running; result not recorded", extra={"job_id": job.id})
    return await store.get(job.id)


async def _run(
    runtime: JobContext, job: Job, lease: str, *, final: bool, deadline: Deadline | None
) -> Processed:
    principal = job_principal(job.client, job.models)
    progress = JobProgress(runtime, job, lease)
    try:
        if job.kind == EDIT:
            prepared = await prepare_json_edit(
                runtime, principal, job.request.encode("utf-8"), delivery=JOB_DELIVERY
            )
        else:
            prepared = prepare_generation(
                runtime, principal, job.request.encode("utf-8"), delivery=JOB_DELIVERY
            )
        result = await _generate(runtime, principal, prepared, progress, deadline)
        await progress.storing(len(result.images))
        keys = await store_images(runtime.image_store, result.images)
    except GatewayError as exc:
        error = exc.body()["error"]
        if exc.should_retry and not final:
            # Refused before any work upstream: nothing billed, so another attempt is safe.
            queued = job_progress.at(progress.state, job_progress.QUEUED_STAGE)
            await _finish(
                runtime, job, lease, {"status": QUEUED, "last_error": error, "progress": queued}
            )
            retry = exc.headers.get("retry-after", "")
            # A provider's header: ASCII digits of sane length only, int() raises on others.
            usable = retry.isascii() and retry.isdigit() and len(retry) <= 6
            delay = int(retry) if usable else DEFAULT_RETRY_SECONDS
            logger.info("job given back to the queue", extra={"job_id": job.id, "code": exc.code})
            return Processed(Disposition.RETRY, await runtime.job_store.get(job.id), delay)
        failed = job_progress.at(progress.state, job_progress.FAILED_STAGE)
        recorded = await _finish(
            runtime, job, lease, {"status": FAILED, "error": error, "progress": failed}
        )
        await _settle(runtime, job, delivered=0, cost=None, succeeded=False)
        logger.info("job failed", extra={"job_id": job.id, "code": exc.code})
        # A retryable error on the last delivery: the message goes on to the DLQ.
        disposition = Disposition.RETRY if exc.should_retry else Disposition.DONE
        return Processed(disposition, recorded)
    except Exception:
        # A bug or an outage after the upstream may have been paid: never run it again.
        logger.exception("job failed unexpectedly", extra={"job_id": job.id})
        recorded = await _finish(
            runtime,
            job,
            lease,
            {
                "status": FAILED,
                "error": internal_error().body()["error"],
                "progress": job_progress.at(progress.state, job_progress.FAILED_STAGE),
            },
        )
        return Processed(Disposition.DONE, recorded)
    outcome = describe(runtime, prepared, result, Delivery([], JOB_DELIVERY.default))
    response = {name: value for name, value in outcome.body.items() if name != "data"}
    images: list[dict[str, Any]] = []
    for key, image in zip(keys, result.images, strict=True):
        entry: dict[str, Any] = {"key": key}
        if image.revised_prompt is not None:
            entry["revised_prompt"] = image.revised_prompt
        images.append(entry)
    done = job_progress.at(progress.state, job_progress.SUCCEEDED_STAGE, images_done=len(keys))
    recorded = await _finish(
        runtime,
        job,
        lease,
        {
            "status": SUCCEEDED,
            "result": {"images": images, "response": response},
            "progress": done,
        },
    )
    await _settle(runtime, job, delivered=len(keys), cost=outcome.cost, succeeded=True)
    await runtime.reliability.record_usage(
        job.client, served_model(prepared, result), len(keys), outcome.cost
    )
    account(runtime, prepared, result, outcome.cost, key=job.client)
    logger.info("job succeeded", extra={"job_id": job.id, "images": len(keys)})
    return Processed(Disposition.DONE, recorded)


async def _generate(
    runtime: JobContext,
    principal: Principal,
    prepared: PreparedGeneration,
    progress: JobProgress,
    deadline: Deadline | None,
) -> ImageResult:
    """The generation, its progress recorded as it comes. A job that asked for ``stream`` gets
    the provider's stream (its partial images stored, their keys in the progress); any other
    job the usual call, watched for what the upstream reports."""
    assert prepared.body is not None
    if prepared.body.stream:
        served = await start_stream(runtime, principal, prepared, deadline)
        first, events = served.first, served.events
    else:
        # With the owner as principal: the catalog's fallbacks serve jobs too, limited to the
        # models the submitting key may use (recorded with the job).
        events = events_of(
            lambda: run_generation(
                runtime, prepared, client=principal.name, deadline=deadline, principal=principal
            )
        )
        first = await anext(events)
    partials = 0  # each is billed upstream (prices.py)
    async with aclosing(events):
        event: StreamEvent = first
        while True:
            if isinstance(event, Completed):
                result = event.result
                result.partial_images = max(result.partial_images, partials)
                return result
            if isinstance(event, PartialImage):
                partials += 1
                (key,) = await store_images(runtime.image_store, [event.image])
                await progress.partial_image(event.index, key)
            else:
                await progress.reported(event)
            event = await anext(events)


async def _settle(
    runtime: JobContext, job: Job, *, delivered: int, cost: Cost | None, succeeded: bool
) -> None:
    """Give back what the submission took, for what the job delivered and cost."""
    taken = Taken.from_json(job.reserved)
    await runtime.reliability.give_back(taken, delivered=delivered, cost=cost, succeeded=succeeded)


def request_text(request: Any) -> bytes:
    """An event's request object as the JSON body a client would have sent.

    ASCII with escapes: a lone surrogate stays encodable, and the parser refuses it by name.
    """
    return json.dumps(request).encode("ascii")
