"""A job's ``progress``: how far it has come, written to its record while it runs.

    {"stage": "generating", "images": 2, "images_done": 1, "percent": 40.0,
     "upstream_stage": "Pending", "partial_images": [{"index": 0, "key": "..."}]}

``stage`` is the gateway's own: ``queued`` -> ``generating`` -> ``storing`` -> ``succeeded`` (or
``failed``; ``queued`` again when a refused attempt goes back to the queue). ``images_done`` of
``images`` counts images the upstream has finished (a fan-out provider reports each call);
``percent`` and ``upstream_stage`` appear only when the upstream reports them (BFL's polling
``progress`` and status); nothing is estimated. ``partial_images`` are the keys of the partial
images a streamed job (``stream: true``) stored; readers get links signed when they read.

Writes are conditional on the running attempt's lease, so a stale worker never overwrites a
newer attempt, and a failed progress write never fails the job (progress is a courtesy; the
result is what counts).
"""

from __future__ import annotations

import logging
from typing import Any

from imagegw.errors import GatewayError
from imagegw.generation.context import JobContext
from imagegw.providers.progress import Progress
from imagegw.state.jobs.model import RUNNING, Job

logger = logging.getLogger(__name__)

QUEUED_STAGE = "queued"
GENERATING = "generating"
STORING = "storing"
SUCCEEDED_STAGE = "succeeded"
FAILED_STAGE = "failed"


def initial(images: int) -> dict[str, Any]:
    return {"stage": QUEUED_STAGE, "images": images, "images_done": 0}


def at(progress: dict[str, Any] | None, stage: str, **changes: Any) -> dict[str, Any]:
    """``progress`` at ``stage`` (a job recorded before progress existed starts empty)."""
    return {**(progress or {}), "stage": stage, **changes}


class JobProgress:
    """The progress of one running attempt of a job."""

    def __init__(self, context: JobContext, job: Job, lease: str) -> None:
        self._context = context
        self._job = job
        self._lease = lease
        self.state: dict[str, Any] = at(job.progress, GENERATING)

    async def reported(self, report: Progress) -> None:
        """What the upstream said; written when it changes something."""
        changed = dict(self.state)
        if report.stage is not None:
            changed["upstream_stage"] = report.stage
        if report.images_done is not None:
            changed["images_done"] = report.images_done
        if report.percent is not None:
            changed["percent"] = round(report.percent, 1)
        await self._write(changed)

    async def partial_image(self, index: int, key: str) -> None:
        partials = [*self.state.get("partial_images", []), {"index": index, "key": key}]
        await self._write({**self.state, "partial_images": partials})

    async def storing(self, images_done: int) -> None:
        await self._write(at(self.state, STORING, images_done=images_done))

    async def _write(self, state: dict[str, Any]) -> None:
        if state == self.state:
            return
        self.state = state
        try:
            written = await self._context.job_store.transition(
                self._job.id,
                expect=RUNNING,
                token=self._lease,
                changes={"progress": state, "updated_at": int(self._context.clock())},
            )
        except GatewayError as exc:
            logger.warning(
                "could not record a job's progress",
                extra={"job_id": self._job.id, "code": exc.code},
            )
            return
        if not written:
            logger.warning("job changed while running; progress not recorded")
