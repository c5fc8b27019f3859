"""``GET /v1/usage``: what a key spent, from the usage ledger (state/usage.py).

``start`` and ``end`` are UTC days (``YYYY-MM-DD`` or unix seconds), both included; by default the
current month up to today, at most 366 days. ``group_by`` is ``model``, ``key`` or ``day``
(default). Any valid key reads its own usage; a key with the ``usage:all`` scope (or ``*``) reads
every key's, or one key's with ``key=NAME``.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from imagegw.api.deps import RuntimeDep
from imagegw.errors import PermissionDenied
from imagegw.state.auth import ALL_SCOPES, SCOPE_USAGE_ALL, authenticate

router = APIRouter(tags=["usage"])


@router.get("/v1/usage", summary="Requests, images and cost by model, key or day")
async def get_usage(
    request: Request,
    runtime: RuntimeDep,
    start: str | None = None,
    end: str | None = None,
    group_by: Annotated[str | None, Query(description="model, key or day")] = None,
    key: str | None = None,
) -> Response:
    # Imported here: the usage report is not part of a cold start that does not ask for it.
    from imagegw.state.usage import parse_group_by, period, report

    caller = await authenticate(request.headers.get("authorization"), runtime.key_store)
    request.state.client = caller.name
    by = parse_group_by(group_by)
    first, last = period(start, end, runtime.today())
    admin = bool({SCOPE_USAGE_ALL, ALL_SCOPES} & caller.scopes)
    if key is not None and key != caller.name and not admin:
        raise PermissionDenied(
            f"This API key may read only its own usage; the '{SCOPE_USAGE_ALL}' scope reads "
            "other keys'.",
            param="key",
        )
    keys = [key] if key is not None else (None if admin else [caller.name])
    entries = await runtime.reliability.usage.entries(keys=keys, start=first, end=last)
    document = report(entries, by=by, start=first, end=last, keys=keys)
    return Response(
        content=json.dumps(document, ensure_ascii=False).encode("utf-8"),
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )
