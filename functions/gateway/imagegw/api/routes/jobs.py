"""``GET /v1/images/jobs/{id}``: the state of an async generation, links signed now.

Only the key that submitted a job may read it (matched by key name); anyone else gets the same
404 as for an id that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from imagegw.api.context import ApiContext
from imagegw.api.deps import RuntimeDep, require_scope
from imagegw.api.routes.images import gateway_base_url
from imagegw.errors import NotFound
from imagegw.fastpath import jsonbody
from imagegw.state.auth import SCOPE_GENERATE, Principal

if TYPE_CHECKING:
    from imagegw.state.jobs.model import Job

router = APIRouter(tags=["jobs"])
Caller = Annotated[Principal, Depends(require_scope(SCOPE_GENERATE))]


async def own_job(runtime: ApiContext, job_id: str, caller: Principal) -> Job:
    """The caller's job; any other (or none) is the same 404, so ids cannot be probed."""
    # Loaded with the first job read: a cold start serving other routes never needs them.
    from imagegw.state.jobs.model import is_valid_job_id

    job = await runtime.job_store.get(job_id) if is_valid_job_id(job_id) else None
    if job is None or job.client != caller.name:
        raise NotFound(f"No job with id '{job_id}'.", param="job_id", code="job_not_found")
    return job


@router.get("/v1/images/jobs/{job_id}", summary="An async image generation job")
async def get_job(job_id: str, request: Request, caller: Caller, runtime: RuntimeDep) -> Response:
    from imagegw.api.job_view import job_view

    job = await own_job(runtime, job_id, caller)
    view = await job_view(
        job,
        runtime.image_store,
        base_url=gateway_base_url(request, runtime.settings.public_base_url),
        now=runtime.clock(),
    )
    # A running job changes; a finished one carries links that expire: never cache either.
    return Response(
        # jsonbody.dumps is total: an upstream's revised prompt may hold a lone surrogate.
        content=jsonbody.dumps(view),
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


@router.get(
    "/v1/images/jobs/{job_id}/events",
    summary="A job's progress as Server-Sent Events, until it finishes",
    response_class=StreamingResponse,
)
async def job_events(
    job_id: str, request: Request, caller: Caller, runtime: RuntimeDep
) -> StreamingResponse:
    """``job.progress`` events (the job as ``GET /v1/images/jobs/{id}`` shows it) on each change,
    then one ``job.succeeded`` or ``job.failed``. Under uvicorn each change is sent as it is
    recorded; through Lambda (buffered) the job's current state is sent once, and the stream
    ends: reconnect, poll, or use the WebSocket (docs/streaming.md)."""
    from imagegw.api.job_events import job_event_frames

    job = await own_job(runtime, job_id, caller)
    frames = job_event_frames(
        runtime,
        job,
        base_url=gateway_base_url(request, runtime.settings.public_base_url),
        follow="aws.event" not in request.scope,
    )
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
