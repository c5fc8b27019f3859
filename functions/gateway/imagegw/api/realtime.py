"""The job-progress WebSocket protocol, the same locally (FastAPI) and on AWS (API Gateway).

Connecting: ``wss://.../v1/images/progress?token=<token>`` with a token from
``POST /v1/realtime/tokens`` (short-lived, single use), or with the credentials in the
``Sec-WebSocket-Protocol`` header (what a browser can set): ``imagegw.v1`` plus
``imagegw.token.<token>`` or ``imagegw.key.<API key>``. The raw key never goes in a URL. The server
answers with the subprotocol ``imagegw.v1`` (never echoing a credential).

Client messages (JSON text):

    {"type": "subscribe", "job_id": "job_..."}
    {"type": "unsubscribe", "job_id": "job_..."}

Server messages:

    {"type": "subscribed", "job_id": "..."}
    {"type": "job.progress", "job": {...as GET /v1/images/jobs/{id} shows it...}}
    {"type": "job.succeeded" | "job.failed", "job": {...}}      (the last one for that job)
    {"type": "error", "job_id": "..."?, "error": {"message", "type", "param", "code"}}

A key can subscribe to its own jobs only; any other id gets the same ``job_not_found`` error as
an id that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imagegw.errors import GatewayError, InvalidRequest, NotFound
from imagegw.state.jobs.model import SUCCEEDED, Job, is_valid_job_id

PROTOCOL = "imagegw.v1"
TOKEN_PROTOCOL = "imagegw.token."  # noqa: S105 - a prefix, not a secret
KEY_PROTOCOL = "imagegw.key."
ACTIONS = ("subscribe", "unsubscribe")


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    key: str | None = None


def offered_protocols(header: str | None) -> list[str]:
    return [part.strip() for part in (header or "").split(",") if part.strip()]


def credentials(protocols: Sequence[str], query_token: str | None) -> Credentials:
    """What the client authenticates with: a token (query or subprotocol) or a key (subprotocol)."""
    for protocol in protocols:
        if protocol.startswith(TOKEN_PROTOCOL):
            return Credentials(token=protocol.removeprefix(TOKEN_PROTOCOL))
        if protocol.startswith(KEY_PROTOCOL):
            return Credentials(key=protocol.removeprefix(KEY_PROTOCOL))
    return Credentials(token=query_token or None)


def chosen_protocol(protocols: Sequence[str]) -> str | None:
    """The subprotocol to answer with: ``imagegw.v1`` when the client spoke it (a client that
    offers protocols must get one of them back, or the browser drops the connection)."""
    return PROTOCOL if protocols else None


@dataclass(frozen=True)
class Request:
    action: str
    job_id: str


def parse(raw: str | bytes) -> Request:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest("The message is not JSON.", code="invalid_json") from exc
    if not isinstance(document, dict):
        raise InvalidRequest("The message must be a JSON object.", code="invalid_json")
    action = document.get("type")
    if action not in ACTIONS:
        raise InvalidRequest(
            f"Unknown message type {action!r}: send 'subscribe' or 'unsubscribe'.",
            param="type",
            code="invalid_value",
        )
    job_id = document.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise InvalidRequest("The message needs a 'job_id'.", param="job_id", code="invalid_value")
    return Request(str(action), job_id)


def not_found(job_id: str) -> NotFound:
    return NotFound(f"No job with id '{job_id}'.", param="job_id", code="job_not_found")


def owned(job: Job | None, job_id: str, client: str) -> Job:
    """``job`` if ``client`` may follow it; else the same 404 as for no job at all."""
    if job is None or job.client != client or not is_valid_job_id(job_id):
        raise not_found(job_id)
    return job


def job_message(job: Job, view: dict[str, Any]) -> dict[str, Any]:
    if not job.finished:
        return {"type": "job.progress", "job": view}
    return {"type": "job.succeeded" if job.status == SUCCEEDED else "job.failed", "job": view}


def subscribed(job_id: str) -> dict[str, Any]:
    return {"type": "subscribed", "job_id": job_id}


def error_message(error: GatewayError, job_id: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "error", **error.body()}
    if job_id is not None:
        message["job_id"] = job_id
    return message


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
