"""The progress WebSocket on AWS: ``imagegw.entrypoints.websocket.handler`` behind the API
Gateway WebSocket API (``ProgressWebSocketApi`` in template.yaml). The protocol is
``api/realtime.py``'s, the same as the local route's.

- ``$connect``: the token (``?token=``, single use) or the token/key in ``Sec-WebSocket-Protocol``
  must authenticate, else 401 and API Gateway refuses the connection. The connection and the key
  name are kept in the realtime table (TTL: API Gateway's two-hour connection limit).
- messages (``$default``, ``subscribe``, ``unsubscribe``): a key subscribes to its own jobs only;
  the answer and the job's current state are posted back through the Management API. From then
  on the worker pushes each change of the job (``entrypoints/progress_push.py``).
- ``$disconnect``: the connection and its subscriptions are forgotten.
"""

from __future__ import annotations

import logging
from typing import Any

from imagegw.api import realtime
from imagegw.entrypoints.lambda_entry import LambdaHandler, instrument, run
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import GatewayError, InvalidRequest
from imagegw.settings import get_settings

logger = logging.getLogger(__name__)

_runtime: Runtime | None = None
_entry: LambdaHandler | None = None


def websocket_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(get_settings())
    return _runtime


def handler(event: Any, context: Any) -> dict[str, Any]:
    global _entry
    if _entry is None:
        _entry = instrument(_handle, get_settings())
    result: dict[str, Any] = _entry(event, context)
    return result


def _handle(event: Any, context: Any) -> dict[str, Any]:
    request_context = event.get("requestContext") if isinstance(event, dict) else None
    if not isinstance(request_context, dict) or not request_context.get("connectionId"):
        logger.error("the WebSocket function received an event that is not a WebSocket event")
        return {"statusCode": 400}
    return run(dispatch(websocket_runtime(), event))


async def dispatch(runtime: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    request_context = event["requestContext"]
    kind = request_context.get("eventType")
    connection_id = str(request_context["connectionId"])
    if kind == "CONNECT":
        return await on_connect(runtime, connection_id, event)
    if kind == "DISCONNECT":
        await runtime.realtime_store.disconnect(connection_id)
        return {"statusCode": 200}
    if kind == "MESSAGE":
        await on_message(runtime, connection_id, event.get("body") or "")
        return {"statusCode": 200}
    return {"statusCode": 400}


async def on_connect(runtime: Runtime, connection_id: str, event: dict[str, Any]) -> dict[str, Any]:
    from imagegw.api.progress_socket import connection_client

    raw_headers = event.get("headers") or {}
    headers = {str(name).lower(): str(value) for name, value in raw_headers.items()}
    protocols = realtime.offered_protocols(headers.get("sec-websocket-protocol"))
    query = event.get("queryStringParameters") or {}
    credentials = realtime.credentials(protocols, query.get("token"))
    client = await connection_client(runtime, credentials)
    if client is None:
        logger.info("WebSocket connection refused")
        return {"statusCode": 401}
    expires_at = int(runtime.clock()) + runtime.settings.realtime_connection_ttl_seconds
    await runtime.realtime_store.connect(connection_id, client, expires_at=expires_at)
    response: dict[str, Any] = {"statusCode": 200}
    chosen = realtime.chosen_protocol(protocols)
    if chosen is not None:
        response["headers"] = {"Sec-WebSocket-Protocol": chosen}
    return response


async def on_message(runtime: Runtime, connection_id: str, body: str) -> None:
    from imagegw.api.job_view import job_view
    from imagegw.entrypoints.progress_push import ConnectionPusher

    endpoint = runtime.settings.websocket_endpoint
    if not endpoint:
        logger.error("IMAGEGW_WEBSOCKET_ENDPOINT is not set: cannot answer WebSocket messages")
        return
    pusher = ConnectionPusher(endpoint)
    store = runtime.realtime_store
    job_id: str | None = None
    try:
        client = await store.client_of(connection_id)
        if client is None:
            raise InvalidRequest("This connection is not known (any more): connect again.")
        request = realtime.parse(body)
        job_id = request.job_id
        if request.action == "unsubscribe":
            await store.unsubscribe(connection_id, job_id)
            return
        job = realtime.owned(await runtime.job_store.get(job_id), job_id, client)
        expires_at = int(runtime.clock()) + runtime.settings.realtime_connection_ttl_seconds
        await store.subscribe(connection_id, job_id, expires_at=expires_at)
        await pusher.post(connection_id, realtime.subscribed(job_id))
        base_url = runtime.settings.public_base_url or ""
        view = await job_view(job, runtime.image_store, base_url=base_url, now=runtime.clock())
        await pusher.post(connection_id, realtime.job_message(job, view))
        if job.finished:
            # Nothing more will happen to it: the last message was just sent.
            await store.unsubscribe(connection_id, job_id)
    except GatewayError as exc:
        if not await pusher.post(connection_id, realtime.error_message(exc, job_id)):
            await store.disconnect(connection_id)
