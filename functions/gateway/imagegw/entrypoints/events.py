"""What non-HTTP events look like, and the generation request they carry.

One payload shape serves EventBridge (the event's ``detail``), direct invocations (the payload)
and SQS messages sent by other services (the message body)::

    {
      "request": {"model": "local/sketch", "prompt": "a red bicycle", ...},  # OpenAI's body
      "job_id": "order-1234",   # optional: record the result as this job (idempotent)
      "client": "team-a"        # optional: the key name that may GET the job
    }

A direct invocation may also be the bare OpenAI body (``{"model": ..., "prompt": ...}``), and may
carry ``"action": "generate"``. Non-HTTP invocations carry no bearer key: they are trusted
because IAM let the sender invoke the function or write to the queue, and run with every scope.

``"action": "edit"`` makes the request an edit in OpenAI's JSON form (``images``: references
``{"image_url": ...}`` or ``{"file_id": ...}``, optional ``mask``), run as a job like a
generation event (generation/edit_jobs.py: ``submit_edit_request``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagegw.errors import (
    GatewayError,
    MalformedEvent,
    internal_error,
)
from imagegw.state.auth import ALL_SCOPES, Principal

_FIELDS = frozenset({"request", "job_id", "client", "action"})
_MAX_CLIENT = 128
GENERATE = "generate"
EDIT = "edit"
_ACTIONS = (GENERATE, EDIT)


@dataclass(frozen=True)
class GenerationEvent:
    """The request an event carries (a generation, or with ``action`` edit an edit)."""

    request: bytes  # the OpenAI body as JSON bytes, parsed and checked by the service
    job_id: str | None
    client: str | None
    action: str = GENERATE  # or EDIT: the request is an edit's JSON form

    @property
    def is_edit(self) -> bool:
        return self.action == EDIT


def event_principal(source: str) -> Principal:
    """The caller of an event: IAM already decided it may invoke us."""
    return Principal(name=f"aws:{source}", scopes=frozenset({ALL_SCOPES}), models=None)


def is_http_event(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and "requestContext" in event
        and ("httpMethod" in event or "version" in event)
    )


def is_sqs_event(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    )


def is_eventbridge_event(event: Any) -> bool:
    return isinstance(event, dict) and "detail-type" in event and "source" in event


def unsupported_kind(event: Any) -> str | None:
    """A name for events of services this function does not serve, else None."""
    if not isinstance(event, dict):
        return None
    if "requestContext" in event:
        return "an API Gateway event that is not an HTTP request (WebSocket?)"
    if "Records" in event:
        return "a batch of records that are not SQS messages"
    return None


def generation_event(payload: Any, *, where: str, bare_allowed: bool = False) -> GenerationEvent:
    """The generation request in ``payload``, or ``MalformedEvent`` saying what is wrong."""
    if not isinstance(payload, Mapping):
        raise MalformedEvent(
            f"The {where} must be a JSON object with a 'request' (OpenAI's image generation "
            f"body), got {type(payload).__name__}."
        )
    if "request" not in payload and bare_allowed and "prompt" in payload:
        bare = {k: v for k, v in payload.items() if k != "action"}
        payload = {
            "request": bare,
            **({"action": payload["action"]} if "action" in payload else {}),
        }
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise MalformedEvent(
            f"Unknown field in the {where}: '{unknown[0]}'. Fields: request, job_id, client, "
            "action.",
            param=unknown[0],
        )
    action = payload.get("action", GENERATE)
    if action not in _ACTIONS:
        shown = repr(action)[:60]
        raise MalformedEvent(
            f"Unknown action in the {where}: {shown}. The actions are 'generate' (the "
            "default) and 'edit'.",
            param="action",
        )
    request = payload.get("request")
    if not isinstance(request, Mapping):
        body = (
            "OpenAI's image edit in its JSON form (model, prompt, images: "
            '[{"image_url": ...} or {"file_id": ...}], ...)'
            if action == EDIT
            else "OpenAI's image generation body (model, prompt, ...)"
        )
        raise MalformedEvent(
            f"The {where} needs 'request': an object with {body}.",
            param="request",
        )
    job_id = payload.get("job_id")
    from imagegw.state.jobs.model import (
        is_valid_job_id,
    )  # job events only: not for every cold start

    if job_id is not None and not is_valid_job_id(job_id):
        raise MalformedEvent(
            "Invalid 'job_id': 1 to 128 letters, digits and _ . : - , starting with a letter "
            "or digit.",
            param="job_id",
        )
    client = payload.get("client")
    if client is not None and (
        not isinstance(client, str) or not client.strip() or len(client) > _MAX_CLIENT
    ):
        raise MalformedEvent(
            f"Invalid 'client': the name of an API key, at most {_MAX_CLIENT} characters.",
            param="client",
        )
    return GenerationEvent(
        # ASCII with escapes: a lone surrogate in the event's text stays encodable and is then
        # refused by the request parser with a 400 naming its field.
        request=json.dumps(request).encode("ascii"),
        job_id=job_id,
        client=client,
        action=action,
    )


def error_result(error: Exception) -> dict[str, Any]:
    """What a non-HTTP invocation returns on failure: OpenAI's error envelope, never a raise."""
    return (error if isinstance(error, GatewayError) else internal_error()).body()
