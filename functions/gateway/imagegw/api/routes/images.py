"""``POST /v1/images/generations`` and the files behind locally signed image links.

With ``Prefer: respond-async`` (RFC 7240) and a job queue available, the generation becomes a job:
202 at once, with the job (status ``queued``) as the body and its URL in ``Location``. Without a
queue the preference is not applied and the request is served synchronously, as RFC 7240 allows;
``Preference-Applied`` says which happened.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from imagegw.api.context import ApiContext
from imagegw.api.deps import RuntimeDep, require_scope
from imagegw.api.json_parts import JSONPartsResponse
from imagegw.errors import GatewayError, NotFound, PayloadTooLarge, UnsupportedMediaType
from imagegw.fastpath.content_length import declared_length
from imagegw.generation.delivery_policy import HTTP_DELIVERY
from imagegw.state.auth import SCOPE_GENERATE, Principal
from imagegw.storage.local import FILES_PATH, LocalImageStore

if TYPE_CHECKING:
    from imagegw.generation.deadline import Deadline

# The generation path (service, validation, idempotency, limits, retries, providers) and the
# request schema are imported by the first generation, not at import: a cold start that answers
# GET /v1/models or a health check never loads them.

router = APIRouter(tags=["images"])
Caller = Annotated[Principal, Depends(require_scope(SCOPE_GENERATE))]


# The route's openapi_extra, filled in by ``document_request_body()`` when the OpenAPI document
# is first built: FastAPI keeps this very dict and reads it only then.
_REQUEST_DOCUMENTATION: dict[str, Any] = {}


def document_request_body() -> None:
    """Describe the generation request in the OpenAPI document (the app calls this first)."""
    if _REQUEST_DOCUMENTATION:
        return
    from imagegw.schemas import ImageGenerationRequest

    _REQUEST_DOCUMENTATION["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": ImageGenerationRequest.model_json_schema()}},
    }
    _REQUEST_DOCUMENTATION["parameters"] = [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Repeat the request safely: the same key and body get the first "
            "answer without a second generation (docs/api.md, Idempotency-Key).",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ]


async def read_json_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing wrong content types and oversized bodies before parsing."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Expected Content-Type: application/json, got '{content_type or 'none'}'."
        )
    declared = request.headers.get("content-length")
    # declared_length: no int() of thousands of digits (Python's 4,300 limit raises).
    length = declared_length(declared)
    if length is not None and length > limit:
        raise _too_large(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    # Built when raised, never ahead: every error message is scrubbed (redaction.py) on creation.
    return PayloadTooLarge(f"The request body is larger than {limit} bytes.")


def gateway_base_url(request: Request, configured: str | None) -> str:
    """Where callers reach this gateway, for links it serves itself.

    Behind API Gateway's default endpoint the stage (``/Prod``) is part of the public URL but
    not of the path the app sees, so it is put back from the event. Custom domains with base
    path mappings cannot be inferred: operators set ``IMAGEGW_PUBLIC_BASE_URL``.
    """
    if configured:
        return configured
    event = request.scope.get("aws.event")
    if isinstance(event, dict):
        context = event.get("requestContext") or {}
        domain = context.get("domainName")
        stage = context.get("stage")
        if isinstance(domain, str) and domain:
            # HTTP APIs' "$default" stage and Function URLs have no stage in their URL.
            staged = isinstance(stage, str) and stage not in ("", "$default")
            prefix = f"/{stage}" if staged and ".execute-api." in domain else ""
            return f"https://{domain}{prefix}/"
    return str(request.base_url)


def request_deadline(request: Request, runtime: ApiContext) -> Deadline | None:
    """Under Lambda, when the answer stops being useful (Mangum passes event and context)."""
    from imagegw.generation.deadline import lambda_deadline

    return lambda_deadline(
        request.scope.get("aws.context"),
        request.scope.get("aws.event"),
        gateway_timeout=runtime.settings.api_gateway_timeout_seconds,
    )


def prefers_async(prefer: str | None) -> bool:
    if not prefer:
        return False
    for preference in prefer.split(","):
        name = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
        if name == "respond-async":
            return True
    return False


@router.post(
    "/v1/images/generations",
    summary="Create images from a prompt (OpenAI Images API)",
    openapi_extra=_REQUEST_DOCUMENTATION,
)
async def create_images(request: Request, caller: Caller, runtime: RuntimeDep) -> Response:
    from imagegw.generation.service import generate_images

    raw = await read_json_body(request, runtime.settings.max_body_bytes)
    settings = runtime.settings
    base_url = gateway_base_url(request, settings.public_base_url)
    if prefers_async(request.headers.get("prefer")) and runtime.job_queue is not None:
        return await submit(
            runtime,
            caller,
            raw,
            base_url=base_url,
            idempotency_key=request.headers.get("idempotency-key"),
        )
    # Mangum puts the Lambda event in the scope: only then does Lambda's size limit apply.
    limited = settings.enforce_response_limit or "aws.event" in request.scope
    if asks_to_stream(raw):
        return await stream(request, caller, runtime, raw, base_url=base_url, limited=limited)
    outcome = await generate_images(
        runtime,
        caller,
        raw,
        base_url=base_url,
        delivery=HTTP_DELIVERY,
        deadline=request_deadline(request, runtime),
        response_limit=settings.max_response_bytes if limited else None,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return JSONPartsResponse(outcome.pieces(), headers=outcome.headers)


def asks_to_stream(raw: bytes) -> bool:
    """``"stream": true`` in the body. Anything unreadable is the non-streamed path's to
    report (as the 400 it is)."""
    if b'"stream"' not in raw:
        return False
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(document, dict) and document.get("stream") is True


async def stream(
    request: Request,
    caller: Principal,
    runtime: ApiContext,
    raw: bytes,
    *,
    base_url: str,
    limited: bool,
) -> Response:
    """OpenAI's event stream (generation/streaming.py). Under uvicorn each event goes out as
    it comes; through Mangum (Lambda, buffered) the whole stream is sent at the end."""
    from imagegw.generation.stream_events import MEDIA_TYPE
    from imagegw.generation.streaming import stream_images

    settings = runtime.settings
    streamed = await stream_images(
        runtime,
        caller,
        raw,
        base_url=base_url,
        delivery=HTTP_DELIVERY,
        deadline=request_deadline(request, runtime),
        response_limit=settings.max_response_bytes if limited else None,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return StreamingResponse(streamed.frames, media_type=MEDIA_TYPE, headers=streamed.headers)


async def submit(
    runtime: ApiContext,
    caller: Principal,
    raw: bytes,
    *,
    base_url: str,
    idempotency_key: str | None = None,
) -> Response:
    """Queue the generation as a job; with an Idempotency-Key, a repeat finds the same job.

    The key names the job (its id is derived from the caller's key name and the header), so a
    client that lost the 202 (a dropped connection, an interrupted batch) submits again and
    gets the job it already has, never a second generation. Another body under the same key
    is the same 422 as for synchronous calls.
    """
    from imagegw.api.job_view import accepted
    from imagegw.errors import JobConflict
    from imagegw.generation.job_runner import submit_job

    try:
        job = await submit_job(runtime, caller, raw, job_id=job_named_by(caller, idempotency_key))
    except JobConflict as exc:
        raise key_reused() from exc
    return await accepted(job, runtime.image_store, base_url=base_url, now=runtime.clock())


def job_named_by(caller: Principal, idempotency_key: str | None) -> str | None:
    """The job an Idempotency-Key names for ``caller`` (None without a key); a malformed key
    is the same 400 as for synchronous calls."""
    from imagegw.state.idempotency import check_key
    from imagegw.state.jobs.model import idempotent_job_id

    key = check_key(idempotency_key)
    return None if key is None else idempotent_job_id(caller.name, key)


def key_reused() -> GatewayError:
    """A job submission whose Idempotency-Key already names another request's job."""
    from imagegw.errors import IdempotencyKeyReused

    return IdempotencyKeyReused(
        "This Idempotency-Key was already used for a different request (other parameters or "
        "images). Use a new key for a new request.",
        param="Idempotency-Key",
    )


@router.get(
    FILES_PATH + "/{key}",
    summary="An image behind a signed, expiring link (local storage only)",
    response_class=Response,
)
async def image_file(
    key: str, runtime: RuntimeDep, expires: str | None = None, signature: str | None = None
) -> Response:
    store = runtime.image_store
    if not isinstance(store, LocalImageStore):
        raise NotFound("Image links are served by the storage backend, not the gateway.")
    data, content_type = await asyncio.to_thread(
        store.open, key, expires=expires, signature=signature
    )
    return Response(
        content=data,
        media_type=content_type,
        headers={"cache-control": "private, max-age=300", "x-content-type-options": "nosniff"},
    )
