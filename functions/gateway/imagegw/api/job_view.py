"""A job as callers see it: ``GET /v1/images/jobs/{id}``, the 202 of a submission, event results.

Links are made here, when the job is read, never when it finished: a presigned URL dies with
the credentials that signed it, so a link stored with the job could be dead by the time anyone
reads it. ``result`` is the same body a synchronous ``response_format=url`` call returns.
"""

from __future__ import annotations

from typing import Any

from imagegw.state.jobs.model import Job
from imagegw.storage import ImageStore

JOB_OBJECT = "image.generation.job"


def jobs_path(job_id: str) -> str:
    return f"/v1/images/jobs/{job_id}"


async def job_view(job: Job, store: ImageStore, *, base_url: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": job.id,
        "object": JOB_OBJECT,
        "status": job.status,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }
    if job.result is not None:
        data = []
        for image in job.result.get("images", []):
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
