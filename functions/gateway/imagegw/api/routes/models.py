"""``GET /v1/models`` and ``GET /v1/models/{id}``: what the catalog knows, in OpenAI's shape.

Each entry is an OpenAI ``Model`` (id, object, created, owned_by, shutdown_date) extended with
``status`` (active, legacy, deprecated, disabled, retired, redirected) and the model's
``capabilities`` (``lifecycle_note`` says what is known about a disputed or unconfirmed status).
A key limited to some models sees only those.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from imagegw.api.deps import RuntimeDep, require_scope
from imagegw.catalog import ModelSpec
from imagegw.errors import ModelNotFound, PermissionDenied
from imagegw.state.auth import SCOPE_MODELS, Principal

router = APIRouter(tags=["models"])
Caller = Annotated[Principal, Depends(require_scope(SCOPE_MODELS))]


def model_object(spec: ModelSpec, today: dt.date) -> dict[str, Any]:
    if spec.is_retired(today):
        status = "redirected" if spec.redirect else "retired"
    elif not spec.enabled:
        status = "disabled"
    elif spec.shutdown_date is not None:
        status = "deprecated"
    elif spec.legacy:
        status = "legacy"
    else:
        status = "active"
    return {
        "id": spec.id,
        "object": "model",
        "created": spec.created,
        "owned_by": spec.owned_by or spec.provider,
        "shutdown_date": spec.shutdown_date.isoformat() if spec.shutdown_date else None,
        "status": status,
        "capabilities": spec.capabilities(),
    }


def _allowed(caller: Principal, spec: ModelSpec) -> bool:
    try:
        caller.require_model(spec.id)
    except PermissionDenied:
        return False
    return True


@router.get("/v1/models", summary="List the models this gateway serves")
async def list_models(caller: Caller, runtime: RuntimeDep) -> dict[str, Any]:
    today = runtime.today()
    return {
        "object": "list",
        "data": [model_object(spec, today) for spec in runtime.catalog if _allowed(caller, spec)],
    }


@router.get("/v1/models/{model_id:path}", summary="Describe one model")
async def get_model(model_id: str, caller: Caller, runtime: RuntimeDep) -> dict[str, Any]:
    spec = runtime.catalog.get(model_id)
    if spec is None or not _allowed(caller, spec):
        raise ModelNotFound(f"The model `{model_id}` does not exist.", param="model")
    return model_object(spec, runtime.today())
