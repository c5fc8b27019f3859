"""A job's progress as Server-Sent Events (``GET /v1/images/jobs/{id}/events``).

    event: job.progress
    data: {"id": "job_...", "object": "image.generation.job", "status": "running",
           "progress": {"stage": "generating", "images": 1, "images_done": 0, ...}, ...}

    event: job.succeeded            (or job.failed)
    data: {... the job with its result (links signed now) or error ...}

One event per change of the job record, then the final one. While nothing changes a comment line
(``: keep-alive``) goes out every ``KEEP_ALIVE_SECONDS`` so that proxies keep the connection.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

from imagegw.api.context import ApiContext
from imagegw.api.job_view import job_view
from imagegw.state.jobs.model import SUCCEEDED, Job

KEEP_ALIVE_SECONDS = 15.0
PROGRESS = "job.progress"


def final_event(job: Job) -> str:
    return "job.succeeded" if job.status == SUCCEEDED else "job.failed"


def frame(event: str, data: dict[str, object]) -> bytes:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n".encode()


async def job_event_frames(
    runtime: ApiContext, job: Job, *, base_url: str, follow: bool
) -> AsyncGenerator[bytes, None]:
    """``follow``: wait for changes until the job finishes; else the current state only."""
    store = runtime.image_store
    current: Job | None = job
    while current is not None:
        view = await job_view(current, store, base_url=base_url, now=runtime.clock())
        if current.finished:
            yield frame(final_event(current), view)
            return
        yield frame(PROGRESS, view)
        if not follow:
            return
        seen = current
        while (
            current := await runtime.job_store.changed(
                seen.id, seen, wait_seconds=KEEP_ALIVE_SECONDS
            )
        ) == seen:
            yield b": keep-alive\n\n"
