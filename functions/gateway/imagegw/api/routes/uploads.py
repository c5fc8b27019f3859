"""``POST /v1/images/uploads``: an upload form for one edit input, beside the API.

The answer is an S3 presigned POST (or, with local storage, the same shape aimed at the gateway
itself) and the ``file_id`` a JSON edit then names:

    {"id": "file-imagegw-…", "object": "image.upload", "file_id": "file-imagegw-…",
     "content_type": "image/png", "max_bytes": 52428800, "expires_at": 1765000000,
     "upload": {"method": "POST", "url": "…", "fields": {…}, "file_field": "file"}}

The caller POSTs ``fields`` and then the file (last, as ``file``) to ``url`` as
multipart/form-data. The form is signed for that one object, content type, owner and size range,
and expires after ``IMAGEGW_UPLOAD_TTL_SECONDS``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from imagegw.api.deps import RuntimeDep, require_scope
from imagegw.api.routes.images import gateway_base_url, read_json_body
from imagegw.errors import (
    InvalidType,
    InvalidValue,
    MalformedBody,
    MissingParameter,
    NotFound,
    PayloadTooLarge,
    UnknownParameter,
    UploadRefused,
)
from imagegw.fastpath.content_length import declared_length
from imagegw.state.auth import SCOPE_GENERATE, Principal
from imagegw.storage.upload_form import FILE_FIELD, UPLOAD_CONTENT_TYPES, UPLOADS_PATH

router = APIRouter(tags=["images"])
Caller = Annotated[Principal, Depends(require_scope(SCOPE_GENERATE))]
# Form fields besides the file: the signed policy, its signature, the content type.
_FORM_OVERHEAD_BYTES = 64 * 1024


@router.post(UPLOADS_PATH, summary="An upload form for an edit's input image (large inputs)")
async def create_upload(request: Request, caller: Caller, runtime: RuntimeDep) -> Response:
    settings = runtime.settings
    document = _object(await read_json_body(request, 16 * 1024))
    unknown = sorted(set(document) - {"content_type", "bytes"})
    if unknown:
        raise UnknownParameter(
            f"Unknown parameter: '{unknown[0][:60]}'. An upload takes 'content_type' and, "
            "optionally, 'bytes'.",
            param=unknown[0][:60],
        )
    content_type = document.get("content_type")
    if content_type is None:
        raise MissingParameter(
            "Missing required parameter: 'content_type' (image/png, image/jpeg or image/webp).",
            param="content_type",
        )
    if content_type not in UPLOAD_CONTENT_TYPES:
        raise InvalidValue(
            f"Invalid value for 'content_type': {json.dumps(content_type)[:60]}. Supported "
            f"values are: {', '.join(UPLOAD_CONTENT_TYPES)}.",
            param="content_type",
        )
    limit = settings.edit_max_image_bytes
    declared = document.get("bytes")
    if declared is not None:
        if not isinstance(declared, int) or isinstance(declared, bool) or declared < 1:
            raise InvalidType("Invalid 'bytes': expected a positive integer.", param="bytes")
        if declared > limit:
            raise PayloadTooLarge(
                f"An input image may be at most {limit} bytes; {declared} were declared.",
                param="bytes",
            )
        limit = declared
    ticket = await runtime.upload_store.create(
        owner=caller.name,
        content_type=content_type,
        max_bytes=limit,
        base_url=gateway_base_url(request, settings.public_base_url),
    )
    body = {
        "id": ticket.file_id,
        "object": "image.upload",
        "file_id": ticket.file_id,
        "content_type": ticket.content_type,
        "max_bytes": ticket.max_bytes,
        "expires_at": ticket.expires_at,
        "upload": {
            "method": "POST",
            "url": ticket.url,
            "fields": ticket.fields,
            "file_field": FILE_FIELD,
        },
    }
    return Response(
        content=json.dumps(body).encode(), media_type="application/json", status_code=201
    )


@router.post(
    UPLOADS_PATH + "/{file_id}",
    summary="Receives an upload form (local storage only; with S3 the form goes to S3)",
    status_code=204,
)
async def receive_upload(file_id: str, request: Request, runtime: RuntimeDep) -> Response:
    # Imported here: the stores are not part of a cold start that does not upload.
    from imagegw.storage.uploads import LocalUploadStore

    store = runtime.upload_store
    if not isinstance(store, LocalUploadStore):
        raise NotFound("Uploads go to the storage backend, not the gateway.")
    limit = runtime.settings.edit_max_image_bytes + _FORM_OVERHEAD_BYTES
    # declared_length: ASCII digits only, no int() of thousands of them.
    declared = declared_length(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"The upload is larger than {limit} bytes.")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != (
        "multipart/form-data"
    ):
        raise MalformedBody(
            "An upload form is sent as multipart/form-data.", code="invalid_multipart"
        )

    async def limited() -> Any:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The upload is larger than {limit} bytes.")
            yield chunk

    parser = MultiPartParser(request.headers, limited(), max_files=1, max_fields=8)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise MalformedBody(
            f"The upload form cannot be read: {exc}", code="invalid_multipart"
        ) from exc
    try:
        policy, signature = form.get("policy"), form.get("signature")
        content_type, file = form.get("Content-Type"), form.get(FILE_FIELD)
        if not isinstance(policy, str) or not isinstance(signature, str):
            raise UploadRefused("The upload form needs its 'policy' and 'signature' fields.")
        if not isinstance(file, UploadFile) or not isinstance(content_type, str):
            raise MissingParameter(
                f"The upload form needs 'Content-Type' and the file as '{FILE_FIELD}'.",
                param=FILE_FIELD,
            )
        try:
            document = store.policy(file_id, policy=policy, signature=signature)
        except (ValueError, KeyError, TypeError) as exc:
            raise UploadRefused("The upload form's policy is not valid.") from exc
        await store.accept(file_id, document, content_type, await file.read())
    finally:
        await form.close()
    return Response(status_code=204)


def _object(raw: bytes) -> dict[str, Any]:
    # Total (schemas.load_json_object): surrogates, huge integers, NaN are 400s naming a field.
    # Imported here: the request schema is not part of a cold start's import.
    from imagegw.schemas import load_json_object

    document = load_json_object(raw)
    return {key: value for key, value in document.items() if value is not None}
