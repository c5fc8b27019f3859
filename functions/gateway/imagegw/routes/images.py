"""``POST /v1/images/generations`` and the files behind locally signed image links."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from imagegw import jsonbody
from imagegw.auth import SCOPE_GENERATE, Principal
from imagegw.deps import RuntimeDep, require_scope
from imagegw.errors import NotFound, PayloadTooLarge, UnsupportedMediaType
from imagegw.schemas import ImageGenerationRequest
from imagegw.service import generate_images
from imagegw.storage.local import FILES_PATH, LocalImageStore

router = APIRouter(tags=["images"])
Caller = Annotated[Principal, Depends(require_scope(SCOPE_GENERATE))]

_REQUEST_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ImageGenerationRequest.model_json_schema()}},
    }
}


async def read_json_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing wrong content types and oversized bodies before parsing."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"Expected Content-Type: application/json, got '{content_type or 'none'}'."
        )
    too_large = PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def gateway_base_url(request: Request, configured: str | None) -> str:
    return configured or str(request.base_url)


@router.post(
    "/v1/images/generations",
    summary="Create images from a prompt (OpenAI Images API)",
    openapi_extra=_REQUEST_SCHEMA,
)
async def create_images(request: Request, caller: Caller, runtime: RuntimeDep) -> Response:
    raw = await read_json_body(request, runtime.settings.max_body_bytes)
    outcome = await generate_images(
        runtime,
        caller,
        raw,
        base_url=gateway_base_url(request, runtime.settings.public_base_url),
    )
    return Response(
        content=jsonbody.dumps(outcome.body),
        media_type="application/json",
        headers=outcome.headers,
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
