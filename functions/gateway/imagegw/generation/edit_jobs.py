"""Edits as async jobs (``Prefer: respond-async`` on ``POST /v1/images/edits``).

A job record holds its request as JSON text, and a worker runs it later, maybe in another
process. An edit's inputs are therefore made durable at submission: every input image is
checked exactly as for a synchronous edit (a bad image is a 400 now, not a failed job later),
then kept as an upload of the submitting key, and the job's request is the JSON form of the edit
naming those uploads by ``file_id``. The worker reads them back (and checks them again) like any
JSON edit; an expiring link given by the caller cannot expire while the job waits in the queue.
"""

from __future__ import annotations

import json
from typing import Any

from imagegw.generation.context import JobContext
from imagegw.generation.delivery_policy import JOB_DELIVERY
from imagegw.generation.edit_request import EditSubmission
from imagegw.generation.edits import prepare_edit
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
) -> Job:
    prepared = await prepare_edit(runtime, principal, submission, delivery=JOB_DELIVERY)
    request = await _durable_request(runtime, principal, submission, prepared)
    return await record_job(runtime, principal, prepared, request=request, kind=EDIT, source=source)


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
