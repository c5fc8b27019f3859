"""The job-progress WebSocket as this process serves it (``WS /v1/images/progress``, container
mode): the handshake's credentials, then one session per connection whose subscriptions each
follow a job in the job store and send every change. ``api/realtime.py`` is the protocol;
``api/routes/realtime.py`` the routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import Response, WebSocket, WebSocketDisconnect

from imagegw.api import realtime
from imagegw.api.context import ApiContext
from imagegw.errors import AuthenticationFailed, GatewayError
from imagegw.state.auth import SCOPE_GENERATE, authenticate

# How long a follower waits for a change before it looks again (a cancelled follower stops).
FOLLOW_SECONDS = 30.0


async def connection_client(runtime: ApiContext, credentials: realtime.Credentials) -> str | None:
    """The key name a connection authenticates as (None: refused)."""
    if credentials.token:
        return await runtime.realtime_store.redeem(credentials.token, now=runtime.clock())
    if credentials.key:
        try:
            principal = await authenticate(f"Bearer {credentials.key}", runtime.key_store)
            principal.require(SCOPE_GENERATE)
        except GatewayError:
            return None
        return principal.name
    return None


async def serve(websocket: WebSocket) -> None:
    """One WebSocket connection of ``WS /v1/images/progress``, from handshake to close."""
    runtime: ApiContext = websocket.app.state.runtime
    protocols = realtime.offered_protocols(websocket.headers.get("sec-websocket-protocol"))
    credentials = realtime.credentials(protocols, websocket.query_params.get("token"))
    client = await connection_client(runtime, credentials)
    if client is None:
        refusal = AuthenticationFailed(
            "Connect with a token from POST /v1/realtime/tokens (?token=...), or with "
            "'imagegw.token.<token>' or 'imagegw.key.<key>' in Sec-WebSocket-Protocol.",
            code="invalid_api_key",
        )
        await websocket.send_denial_response(
            Response(
                content=json.dumps(refusal.body()).encode("utf-8"),
                status_code=refusal.status,
                media_type="application/json",
            )
        )
        return
    await websocket.accept(subprotocol=realtime.chosen_protocol(protocols))
    await Session(runtime, websocket, client).run()


class Session:
    """One connection: its subscriptions, each a task following one job."""

    def __init__(self, runtime: ApiContext, websocket: WebSocket, client: str) -> None:
        self._runtime = runtime
        self._websocket = websocket
        self._client = client
        self._followers: dict[str, asyncio.Task[None]] = {}
        self._sending = asyncio.Lock()

    async def run(self) -> None:
        try:
            while True:
                await self._handle(await self._websocket.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            for task in self._followers.values():
                task.cancel()
            for task in self._followers.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _send(self, message: dict[str, object]) -> None:
        async with self._sending:
            await self._websocket.send_text(realtime.encode(message))

    async def _handle(self, raw: str) -> None:
        job_id: str | None = None
        try:
            request = realtime.parse(raw)
            job_id = request.job_id
            if request.action == "unsubscribe":
                follower = self._followers.pop(job_id, None)
                if follower is not None:
                    follower.cancel()
                return
            job = realtime.owned(await self._runtime.job_store.get(job_id), job_id, self._client)
        except GatewayError as exc:
            await self._send(realtime.error_message(exc, job_id))
            return
        if job_id in self._followers:
            return
        await self._send(realtime.subscribed(job_id))
        self._followers[job_id] = asyncio.ensure_future(self._follow(job.id))

    async def _follow(self, job_id: str) -> None:
        from imagegw.api.job_view import job_view

        store = self._runtime.job_store
        base_url = websocket_base_url(self._websocket, self._runtime)
        current = await store.get(job_id)
        while current is not None:
            view = await job_view(
                current, self._runtime.image_store, base_url=base_url, now=self._runtime.clock()
            )
            await self._send(realtime.job_message(current, view))
            if current.finished:
                self._followers.pop(job_id, None)
                return
            seen = current
            while (current := await store.changed(job_id, seen, wait_seconds=FOLLOW_SECONDS)) == (
                seen
            ):
                pass


def websocket_base_url(websocket: WebSocket, runtime: ApiContext) -> str:
    """Where links in pushed messages point: the configured public URL, else this server."""
    configured = runtime.settings.public_base_url
    if configured:
        return configured
    scheme = "https" if websocket.url.scheme == "wss" else "http"
    return f"{scheme}://{websocket.url.netloc}/"
