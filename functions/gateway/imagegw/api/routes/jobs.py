"""``GET /v1/images/jobs/{id}``: the state of an async generation, links signed now.

Only the key that submitted a job may read it (matched by key name); anyone else gets the same
404 as for an id that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from imagegw.api.deps import RuntimeDep, require_scope
from imagegw.api.routes.images import gateway_base_url
from imagegw.errors import NotFound
from imagegw.fastpath import jsonbody
from imagegw.state.auth import SCOPE_GENERATE, Principal

router = APIRouter(tags=["jobs"])
Caller = Annotated[Principal, Depends(require_scope(SCOPE_GENERATE))]


@router.get("/v1/images/jobs/{job_id}", summary="An async image generation job")
async def get_job(job_id: str, request: Request, caller: Caller, runtime: RuntimeDep) -> Response:
    # Loaded with the first job read: a cold start serving other routes never needs them.
    from imagegw.api.job_view import job_view
    from imagegw.state.jobs.model import is_valid_job_id

    job = await runtime.job_store.get(job_id) if is_valid_job_id(job_id) else None
    if job is None or job.client != caller.name:
        raise NotFound(f"No job with id '{job_id}'.", param="job_id", code="job_not_found")
    view = await job_view(
        job,
        runtime.image_store,
        base_url=gateway_base_url(request, runtime.settings.public_base_url),
    )
    # A running job changes; a finished one carries links that expire: never cache either.
    return Response(
        # jsonbody.dumps is total: an upstream's revised prompt may hold a lone surrogate.
        content=jsonbody.dumps(view),
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )
