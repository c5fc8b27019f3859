"""A job as callers see it: ``GET /v1/images/jobs/{id}``, the 202 of a submission, event results.

Links are made here, when the job is read, never when it finished: a presigned URL dies with
the credentials that signed it, so a link stored with the job could be dead by the time anyone
reads it. ``result`` is the same body a synchronous ``response_format=url`` call returns.

Links are made only for images that still exist. A job read past its ``expires_at`` (DynamoDB
deletes expired items up to two days late), or one whose images are gone (the bucket's
retention, or a hand deletion), is ``"status": "expired"`` with an ``error`` saying so: never
links that would answer 404.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.responses import Response

from imagegw.errors import JobExpired
from imagegw.state.jobs.model import Job
from imagegw.storage import ImageStore

JOB_OBJECT = "image.generation.job"
EXPIRED = "expired"


def jobs_path(job_id: str) -> str:
    return f"/v1/images/jobs/{job_id}"


async def accepted(job: Job, store: ImageStore, *, base_url: str, now: float) -> Response:
    """The 202 of a job submitted with ``Prefer: respond-async``: the job, and where to read it."""
    return Response(
        content=json.dumps(await job_view(job, store, base_url=base_url, now=now)).encode(),
        status_code=202,
        media_type="application/json",
        headers={
            "location": base_url.rstrip("/") + jobs_path(job.id),
            "preference-applied": "respond-async",
        },
    )


def _expired(view: dict[str, Any], message: str) -> dict[str, Any]:
    return {**view, "status": EXPIRED, "error": JobExpired(message).body()["error"]}


async def job_view(job: Job, store: ImageStore, *, base_url: str, now: float) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": job.id,
        "object": JOB_OBJECT,
        "status": job.status,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "expires_at": job.expires_at,
    }
    if now >= job.expires_at:
        return _expired(
            view,
            f"This job expired at {job.expires_at} (unix seconds): its record and its images "
            "are deleted after the gateway's retention. Submit the request again if you still "
            "want the images.",
        )
    if job.result is not None:
        images = job.result.get("images", [])
        present = await asyncio.gather(*(store.exists(image["key"]) for image in images))
        if not all(present):
            return _expired(
                view,
                "This job's images are no longer stored (deleted after the gateway's image "
                "retention). Submit the request again if you still want them.",
            )
        data = []
        for image in images:
            link = await store.link(image["key"], base_url=base_url)
            item: dict[str, Any] = {"url": link.url, "expires_at": link.expires_at}
            if "revised_prompt" in image:
                item["revised_prompt"] = image["revised_prompt"]
            data.append(item)
        view["result"] = {**job.result.get("response", {}), "data": data}
    if job.progress is not None:
        view["progress"] = await progress_view(job.progress, store, base_url=base_url)
    if job.error is not None:
        view["error"] = job.error
    return view


async def progress_view(
    progress: dict[str, Any], store: ImageStore, *, base_url: str
) -> dict[str, Any]:
    """``progress`` with each stored partial image as a link signed now (never a stored key)."""
    partials = progress.get("partial_images")
    if not partials:
        return dict(progress)
    links = []
    for partial in partials:
        link = await store.link(partial["key"], base_url=base_url)
        links.append({"index": partial["index"], "url": link.url, "expires_at": link.expires_at})
    return {**progress, "partial_images": links}
