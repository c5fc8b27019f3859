"""Edits as async jobs (``Prefer: respond-async`` on ``POST /v1/images/edits``).

A job record holds its request as JSON text, and a worker runs it later, maybe in another
process. An edit's inputs are therefore made durable at submission: every input image is
checked exactly as for a synchronous edit (a bad image is a 400 now, not a failed job later),
then kept as an upload of the submitting key, and the job's request is the JSON form of the edit
naming those uploads by ``file_id``. The worker reads them back (and checks them again) like any
JSON edit; an expiring link given by the caller cannot expire while the job waits in the queue.

Edit jobs from events (SQS, EventBridge, direct invocations: ``submit_edit_request``) arrive in
that JSON form, their images as references only (no bytes, no ``data:`` URLs), and take the same
path; they may also name an image of the gateway's bucket as ``s3://`` (``image_refs``).
"""

from __future__ import annotations

import json
from typing import Any

from imagegw.errors import JobConflict
from imagegw.generation.context import JobContext
from imagegw.generation.delivery_policy import JOB_DELIVERY
from imagegw.generation.edit_request import EditSubmission, submission_from_json
from imagegw.generation.edits import image_reader, prepare_edit
from imagegw.generation.image_refs import ImageReader
from imagegw.generation.job_runner import record_job
from imagegw.generation.service import PreparedGeneration
from imagegw.state.auth import Principal
from imagegw.state.jobs.model import EDIT, Job


async def submit_edit_job(
    runtime: JobContext,
    principal: Principal,
    submission: EditSubmission,
    *,
    source: str = "api",
    job_id: str | None = None,
    enqueue: bool = True,
    reader: ImageReader | None = None,
    submitted: str | None = None,
) -> Job:
    """Check the edit (reading its inputs with ``reader``, default: an HTTP caller's), keep the
    inputs as uploads of ``principal`` and record the job (``job_runner.record_job``)."""
    prepared = await prepare_edit(
        runtime, principal, submission, delivery=JOB_DELIVERY, reader=reader
    )
    request = await _durable_request(runtime, principal, submission, prepared)
    return await record_job(
        runtime,
        principal,
        prepared,
        request=request,
        kind=EDIT,
        source=source,
        job_id=job_id,
        enqueue=enqueue,
        submitted=submitted,
    )


async def submit_edit_request(
    runtime: JobContext,
    principal: Principal,
    raw: bytes,
    *,
    source: str,
    job_id: str,
    enqueue: bool,
) -> Job:
    """An edit job from the JSON form of an edit (an event's request, entrypoints/events.py).

    Its images are references (``image_url``, ``file_id``), read with an event's reader
    (``image_reader(..., events=True)``). The sender chose the job id: when the job exists, a
    retried event with the same request gets it back before anything is read again (a link it
    names may have expired since), and another request under that id is a ``JobConflict``.
    """
    submitted = raw.decode("utf-8")
    existing = await runtime.job_store.get(job_id)
    if existing is not None:
        if not existing.same_submission(principal.name, submitted):
            raise JobConflict(
                f"The job id '{job_id}' is already used by another request.", param="job_id"
            )
        return existing
    return await submit_edit_job(
        runtime,
        principal,
        submission_from_json(raw),
        source=source,
        job_id=job_id,
        enqueue=enqueue,
        reader=image_reader(runtime, principal, events=True),
        submitted=submitted,
    )


async def _durable_request(
    runtime: JobContext,
    principal: Principal,
    submission: EditSubmission,
    prepared: PreparedGeneration,
) -> str:
    request = prepared.validated.image_request
    uploads = runtime.upload_store
    images = [
        {"file_id": await uploads.put(image.data, owner=principal.name)} for image in request.images
    ]
    document: dict[str, Any] = {**submission.fields, "images": images}
    if request.mask is not None:
        document["mask"] = {"file_id": await uploads.put(request.mask.data, owner=principal.name)}
    return json.dumps(document, ensure_ascii=False)
