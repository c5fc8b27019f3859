"""Job progress over WebSocket (``api/realtime.py`` is the protocol).

``POST /v1/realtime/tokens``: a short-lived, single-use token for the WebSocket URL, issued to the
key that asks (over HTTPS, with its ``Authorization`` header), and the URL to connect to.

``WS /v1/images/progress``: the protocol served by this process (``make dev``, container mode):
each subscription follows the job in the job store and sends every change. On AWS the URL
returned with tokens is the API Gateway WebSocket API's instead (``entrypoints/websocket.py``).
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, WebSocket

from imagegw.api.deps import RuntimeDep, require_scope
from imagegw.api.routes.images import gateway_base_url
from imagegw.state.auth import SCOPE_GENERATE, Principal

router = APIRouter(tags=["realtime"])
Caller = Annotated[Principal, Depends(require_scope(SCOPE_GENERATE))]

PROGRESS_PATH = "/v1/images/progress"


def websocket_url(base_url: str) -> str:
    origin = base_url.rstrip("/")
    if origin.startswith("https://"):
        origin = "wss://" + origin.removeprefix("https://")
    elif origin.startswith("http://"):
        origin = "ws://" + origin.removeprefix("http://")
    return origin + PROGRESS_PATH


@router.post("/v1/realtime/tokens", summary="A short-lived token for the job-progress WebSocket")
async def create_token(request: Request, caller: Caller, runtime: RuntimeDep) -> Response:
    settings = runtime.settings
    expires_at = int(runtime.clock()) + settings.realtime_token_ttl_seconds
    token = await runtime.realtime_store.issue_token(caller.name, expires_at=expires_at)
    url = settings.websocket_url or websocket_url(
        gateway_base_url(request, settings.public_base_url)
    )
    body = {"object": "realtime.token", "token": token, "expires_at": expires_at, "url": url}
    return Response(
        content=json.dumps(body).encode("utf-8"),
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


@router.websocket(PROGRESS_PATH)
async def progress_socket(websocket: WebSocket) -> None:
    # Imported here: the protocol is not part of a cold start that opens no WebSocket.
    from imagegw.api.progress_socket import serve

    await serve(websocket)
