"""``POST /v1/images/edits`` (multipart or JSON) and the retired ``POST /v1/images/variations``.

An edit is served like a generation (same delivery, headers, Idempotency-Key, limits) once its
body is read (``api.edit_body``) and its inputs checked (``generation.edits``). docs/edits.md
describes both encodings, the limits, the providers and the upload path for large inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from imagegw.api.context import ApiContext
from imagegw.api.deps import RuntimeDep, require_scope
from imagegw.api.json_parts import JSONPartsResponse
from imagegw.api.routes.images import (
    gateway_base_url,
    job_named_by,
    key_reused,
    prefers_async,
    request_deadline,
)
from imagegw.errors import EndpointRetired
from imagegw.generation.delivery_policy import HTTP_DELIVERY
from imagegw.state.auth import SCOPE_GENERATE, Principal

if TYPE_CHECKING:
    from imagegw.generation.edit_request import EditSubmission

router = APIRouter(tags=["images"])
Caller = Annotated[Principal, Depends(require_scope(SCOPE_GENERATE))]

_REFERENCE = {
    "type": "object",
    "properties": {"image_url": {"type": "string"}, "file_id": {"type": "string"}},
    "additionalProperties": False,
}
_SCALARS: dict[str, Any] = {
    "prompt": {"type": "string"},
    "model": {"type": "string"},
    "n": {"type": "integer"},
    "size": {"type": "string"},
    "quality": {"type": "string"},
    "background": {"type": "string"},
    "output_format": {"type": "string"},
    "output_compression": {"type": "integer"},
    "input_fidelity": {"type": "string"},
    "response_format": {"type": "string"},
    "user": {"type": "string"},
    "safety_identifier": {"type": "string"},
    "stream": {"type": "boolean"},
    "partial_images": {"type": "integer", "minimum": 0, "maximum": 3},
}
_EDIT_DOCUMENTATION: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image", "prompt"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "image[]": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "maxItems": 16,
                        },
                        "mask": {"type": "string", "format": "binary"},
                        **_SCALARS,
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["images", "prompt"],
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": _REFERENCE,
                            "minItems": 1,
                            "maxItems": 16,
                        },
                        "mask": _REFERENCE,
                        **_SCALARS,
                    },
                }
            },
        },
    }
}


@router.post(
    "/v1/images/edits",
    summary="Edit images, or make new ones from reference images (OpenAI Images API)",
    openapi_extra=_EDIT_DOCUMENTATION,
)
async def create_edit(request: Request, caller: Caller, runtime: RuntimeDep) -> Response:
    # Imported on the first edit, as the generation path is (routes/images.py).
    from imagegw.api.edit_body import read_edit_submission
    from imagegw.generation.edits import edit_images

    settings = runtime.settings
    submission = await read_edit_submission(request, max_body_bytes=settings.edit_max_body_bytes)
    base_url = gateway_base_url(request, settings.public_base_url)
    if prefers_async(request.headers.get("prefer")) and runtime.job_queue is not None:
        return await submit_edit(
            runtime,
            caller,
            submission,
            base_url=base_url,
            idempotency_key=request.headers.get("idempotency-key"),
        )
    limited = settings.enforce_response_limit or "aws.event" in request.scope
    if submission.fields.get("stream") is True:
        return await stream_edit_response(
            request, caller, runtime, submission, base_url=base_url, limited=limited
        )
    outcome = await edit_images(
        runtime,
        caller,
        submission,
        base_url=base_url,
        delivery=HTTP_DELIVERY,
        deadline=request_deadline(request, runtime),
        response_limit=settings.max_response_bytes if limited else None,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return JSONPartsResponse(outcome.pieces(), headers=outcome.headers)


async def stream_edit_response(
    request: Request,
    caller: Principal,
    runtime: ApiContext,
    submission: EditSubmission,
    *,
    base_url: str,
    limited: bool,
) -> Response:
    """OpenAI's ``image_edit.*`` event stream, sent as a generation's is (routes/images.py:
    live under uvicorn, buffered through Mangum)."""
    from imagegw.generation.edits import stream_edit
    from imagegw.generation.stream_events import MEDIA_TYPE

    settings = runtime.settings
    streamed = await stream_edit(
        runtime,
        caller,
        submission,
        base_url=base_url,
        delivery=HTTP_DELIVERY,
        deadline=request_deadline(request, runtime),
        response_limit=settings.max_response_bytes if limited else None,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return StreamingResponse(streamed.frames, media_type=MEDIA_TYPE, headers=streamed.headers)


async def submit_edit(
    runtime: ApiContext,
    caller: Principal,
    submission: EditSubmission,
    *,
    base_url: str,
    idempotency_key: str | None = None,
) -> Response:
    """The edit as a job: 202 with the job and its URL (``Prefer: respond-async``). With an
    Idempotency-Key, a repeat finds the same job, as for generations (routes/images.submit)."""
    from imagegw.api.job_view import accepted
    from imagegw.errors import JobConflict
    from imagegw.generation.edit_jobs import submit_edit_job
    from imagegw.generation.edit_request import submission_fingerprint

    job_id = job_named_by(caller, idempotency_key)
    try:
        job = await submit_edit_job(
            runtime,
            caller,
            submission,
            job_id=job_id,
            submitted=None if job_id is None else submission_fingerprint(submission),
        )
    except JobConflict as exc:
        raise key_reused() from exc
    return await accepted(job, runtime.image_store, base_url=base_url, now=runtime.clock())


@router.post(
    "/v1/images/variations",
    summary="Retired upstream: use /v1/images/edits",
    status_code=410,
)
async def create_variation() -> Response:
    raise EndpointRetired(
        "POST /v1/images/variations is retired: OpenAI removed the endpoint with dall-e-2 "
        "(shut down 2026-05-12), and no model this gateway serves makes variations. Use "
        "POST /v1/images/edits (client.images.edit) with the image and a prompt that "
        "describes the variation you want; GET /v1/models lists the models that edit "
        "(capabilities.edits).",
    )
