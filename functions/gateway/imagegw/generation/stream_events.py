"""OpenAI's image-generation stream on the wire: ``text/event-stream`` frames, one per event.

    event: image_generation.partial_image
    data: {"type":"image_generation.partial_image","b64_json":"...","partial_image_index":0,...}

    event: image_generation.completed
    data: {"type":"image_generation.completed","b64_json":"...","usage":{...},...}

An edit's stream is the same with its own event names (``image_edit.partial_image``,
``image_edit.completed``: ``EDIT_EVENTS``), as OpenAI's edit endpoint sends them.

A failure after the stream started is an ``error`` event whose data has a top-level ``error``
object (OpenAI's envelope): the openai SDK raises ``APIError`` on exactly that. The stream ends
with no ``[DONE]`` (OpenAI sends none; the SDK stops at the end of the connection).

The base64 of an image is spliced into the frame as it is, never pushed through ``json.dumps``
(``jsonbody.py`` explains why).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from imagegw.errors import GatewayError
from imagegw.fastpath.base64text import Base64Text

MEDIA_TYPE = "text/event-stream"
ERROR = "error"


@dataclass(frozen=True)
class EventNames:
    """The event types of one kind of stream (also the data's ``type``)."""

    partial_image: str
    completed: str


GENERATION_EVENTS = EventNames("image_generation.partial_image", "image_generation.completed")
EDIT_EVENTS = EventNames("image_edit.partial_image", "image_edit.completed")


def event_names(*, is_edit: bool) -> EventNames:
    return EDIT_EVENTS if is_edit else GENERATION_EVENTS


# What the completed event carries besides the image and the resolved settings: the gateway's
# own fields of a non-streamed response (which model served, what was ignored, ...).
_NOT_COPIED = frozenset({"created", "data"})


def frame(event: str, data: dict[str, Any]) -> bytes:
    """One SSE event. A ``b64_json`` that is base64 (``Base64Text``) is written as it is."""
    image = data.get("b64_json")
    if not isinstance(image, Base64Text):
        return _frame(event, _json(data))
    marker = f"imagegw-b64-{secrets.token_hex(16)}"
    text = _json({**data, "b64_json": marker})
    before, found, after = text.partition(marker.encode("ascii"))
    assert found, "the marker is in the text exactly once"
    # The image bytes are joined into the frame once; a JSON string never spans lines.
    return b"".join(
        (b"event: ", event.encode("ascii"), b"\ndata: ", before, image.ascii, after, b"\n\n")
    )


def _json(data: dict[str, Any]) -> bytes:
    """UTF-8 JSON; total: text that is not valid Unicode (a lone surrogate an upstream relayed
    in a partial image's fields) is written as a JSON escape instead of ending the stream."""
    try:
        return json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data).encode("ascii")


def _frame(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode("ascii") + b"\ndata: " + data + b"\n\n"


def partial_image_event(
    image: Base64Text,
    index: int,
    settings: dict[str, Any],
    created_at: int,
    names: EventNames,
) -> dict[str, Any]:
    """``settings``: size, quality, background and output_format as requested (may be "auto")."""
    return {
        "type": names.partial_image,
        "b64_json": image,
        "created_at": created_at,
        **settings,
        "partial_image_index": index,
    }


def completed_event(
    body: dict[str, Any], requested: dict[str, Any], names: EventNames
) -> dict[str, Any]:
    """The completed event of a generation whose non-streamed answer would be ``body``.

    The image item (``b64_json``, or ``url`` and ``expires_at`` for ``response_format=url``)
    moves to the top level, as OpenAI's event has it. Settings the provider did not resolve are
    given as requested (``requested``); ``usage`` is the upstream's, or null when it reports
    none (Google, local): no token counts are made up.
    """
    items = body.get("data") or [{}]
    event: dict[str, Any] = {
        "type": names.completed,
        **items[0],
        "created_at": body.get("created"),
    }
    for name in ("size", "quality", "background", "output_format"):
        event[name] = body.get(name, requested.get(name))
    event["usage"] = body.get("usage")
    for name, value in body.items():
        if name not in _NOT_COPIED and name not in event:
            event[name] = value
    return event


def error_event(error: GatewayError) -> dict[str, Any]:
    return {"type": ERROR, **error.body()}


def frame_cost(data: bytes) -> int:
    """What ``data`` adds to a buffered Lambda result: its bytes, plus one per character JSON
    escapes when the body becomes a string (``response_size.py``; SSE frames are ASCII apart
    from prompts echoed back, which are few bytes)."""
    return len(data) + data.count(b'"') + data.count(b"\\") + data.count(b"\n")
