"""A fake OpenAI Images upstream on 127.0.0.1, speaking the real wire protocol.

It runs the stdlib ``ThreadingHTTPServer`` in a daemon thread, records every request exactly as
it arrived (method, path, headers, raw body bytes, parsed JSON) and answers from a script: a
queue of replies, then ``default`` once the queue is empty.

    with FakeOpenAI() as fake:
        fake.enqueue(Images(), error(429, "Slow down", headers={"Retry-After": "3"}))
        ...  # point a client at fake.base_url ("http://127.0.0.1:PORT/v1")
        fake.requests[0].json["model"]

Replies: ``Images`` (real PNG/JPEG/WebP bytes drawn by Pillow at the requested size, with the
resolved settings and ``usage`` the real API sends), ``Error`` (an OpenAI error envelope with a
status and optional headers), ``Raw`` (any bytes: garbage, or a body shorter than its declared
length), ``Delay`` (wait, then another reply: provokes timeouts), ``Trickle`` (headers at once,
then the body a few bytes at a time) and ``Hangup`` (close the connection without answering).

Like api.openai.com it refuses a request without a Bearer key (401) and a GPT image request that
carries ``response_format`` (400 unknown_parameter), so a client that gets this wrong fails here
as it would upstream.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_PALETTE = ((200, 40, 40), (40, 160, 60), (40, 70, 200), (220, 180, 30), (120, 40, 160))


def encode_image(
    size: str, output_format: str, index: int = 0, *, transparent: bool = False
) -> bytes:
    """A real image of ``size`` ("WxH") in ``output_format``; ``index`` picks the colour."""
    width, height = (int(side) for side in size.split("x"))
    colour = _PALETTE[index % len(_PALETTE)]
    if transparent and output_format != "jpeg":
        image = Image.new("RGBA", (width, height), (*colour, 0))
    else:
        image = Image.new("RGB", (width, height), colour)
    buffer = io.BytesIO()
    options: dict[str, Any] = {"compress_level": 1} if output_format == "png" else {"quality": 80}
    image.save(buffer, IMAGE_FORMATS[output_format], **options)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ replies


@dataclass(frozen=True)
class Images:
    """A successful generation. ``None`` fields are resolved from the request like the real API."""

    count: int | None = None  # images returned; None = the requested n
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    usage: dict[str, Any] | None = None
    revised_prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more top-level fields
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Error:
    """An OpenAI error response: ``{"error": {"message", "type", "param", "code"}}``."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Raw:
    """Any bytes. ``declared_length`` larger than ``body`` makes a truncated response."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"
    declared_length: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before answering with ``then`` (the request is recorded at once)."""

    seconds: float
    then: Reply = field(default_factory=Images)


@dataclass(frozen=True)
class Trickle:
    """Headers at once, then the body of ``then`` in ``chunks`` pieces, ``interval`` apart."""

    interval: float
    chunks: int
    then: Reply = field(default_factory=Images)


@dataclass(frozen=True)
class Hangup:
    """Read the request, then close the connection without a single byte of answer."""


@dataclass(frozen=True)
class Stream:
    """A streamed generation (``stream: true``), as text/event-stream: the partial images the
    request asked for (``partial_images``, capped by ``partials`` when set), ``interval``
    seconds apart, then the completed event, or ``error`` (an error object) in its place.

    ``hold`` makes the stream wait after its first event until the test sets it (or 10 s
    pass): a test can then check, with no timing involved, that the first event reached the
    client while the upstream was still generating (``FakeOpenAI.streams_finished``).
    """

    partials: int | None = None
    interval: float = 0.0
    hold: threading.Event | None = None
    error: dict[str, Any] | None = None
    done_marker: bool = False  # a final "data: [DONE]" (OpenAI sends none; compatibles may)
    truncate: bool = False  # close the connection before the completed event


Reply = Images | Error | Raw | Delay | Trickle | Hangup | Stream


def rate_limited(retry_after: str | None = None) -> Error:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Error(
        429,
        "Rate limit exceeded for images per minute in organization org-fake. Limit: 5/1min.",
        type="requests",
        code="rate_limit_exceeded",
        headers=headers,
    )


def moderation_blocked() -> Error:
    return Error(
        400,
        "Your request was rejected by the safety system. SECRET-UPSTREAM-DETAIL",
        type="image_generation_user_error",
        code="moderation_blocked",
    )


def content_policy_violation() -> Error:
    return Error(
        400,
        "Your request was rejected as a result of our safety system.",
        code="content_policy_violation",
    )


def server_error() -> Error:
    return Error(
        500,
        "The server had an error while processing your request. SECRET-UPSTREAM-DETAIL",
        type="server_error",
    )


def invalid_upstream_key() -> Error:
    return Error(
        401,
        "Incorrect API key provided: sk-ups***test. SECRET-UPSTREAM-DETAIL",
        code="invalid_api_key",
    )


# ------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart/form-data body, as it arrived."""

    name: str
    filename: str | None
    content_type: str | None  # the part's own Content-Type (files)
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    raw_headers: list[tuple[str, str]]  # as sent
    body: bytes
    json: Any  # None when the body is not JSON
    form: list[FormPart] | None = None  # the parts of a multipart/form-data body, in order

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def fields(self) -> dict[str, str]:
        """The text parts of a form (each name once), by name."""
        assert self.form is not None, "not a multipart request"
        return {part.name: part.text for part in self.form if part.filename is None}

    def files(self) -> list[FormPart]:
        assert self.form is not None, "not a multipart request"
        return [part for part in self.form if part.filename is not None]


def parse_form(content_type: str, body: bytes) -> list[FormPart] | None:
    """A multipart/form-data body in parts (stdlib email parser), or None for anything else."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    from email import message_from_bytes
    from email.policy import HTTP

    message = message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=HTTP
    )
    if not message.is_multipart():
        return None
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        parts.append(
            FormPart(
                name=str(name),
                filename=part.get_filename(),
                content_type=part.get_content_type() if part.get_filename() else None,
                data=payload if isinstance(payload, bytes) else b"",
            )
        )
    return parts


# ------------------------------------------------------------------------------------ server


class FakeOpenAI:
    """The fake upstream. Start with ``with FakeOpenAI() as fake`` or ``start()``/``stop()``."""

    def __init__(self, *, prefix: str = "/v1", expected_key: str | None = None) -> None:
        self.prefix = prefix.rstrip("/")
        self.expected_key = expected_key
        self.default: Reply = Images()
        self.requests: list[RecordedRequest] = []
        # Replies that could not be delivered (the client had gone): tests may assert on it.
        self.undelivered = 0
        # Streams (``Stream`` replies) that have sent their last event.
        self.streams_finished = 0
        self.handler_errors: list[BaseException] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- script

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # -- lifecycle

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake upstream is not running"
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + self.prefix

    def start(self) -> FakeOpenAI:
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases handlers that are delaying
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the fake is stopping (handlers give up then)."""
        return self._stopping.wait(seconds)

    def next_request_id(self) -> str:
        return f"req_upstream_{next(self._ids)}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections under concurrent load (bench/load.py).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, fake: FakeOpenAI) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Kept for tests instead of a traceback on stderr.
        exc = sys.exc_info()[1]
        if exc is not None:
            self.fake.handler_errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1.0"
    # A client that connects and never sends must not hold teardown for long.
    timeout = 10
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the recorded requests are the log."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        form = parse_form(self.headers.get("Content-Type", ""), body)
        try:
            document = json.loads(body) if body and form is None else None
        except ValueError:
            document = None
        fake._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                raw_headers=list(self.headers.items()),
                body=body,
                json=document,
                form=form,
            )
        )
        if form is not None:
            # An edit: its text fields play the JSON body's part in the answer.
            document = {part.name: part.text for part in form if part.filename is None}
        self.close_connection = True
        reply = self._gatekeeper(fake, document) or fake._next_reply()
        self._answer(reply, document)

    def _gatekeeper(self, fake: FakeOpenAI, document: Any) -> Reply | None:
        """What api.openai.com answers before looking at the script."""
        path = self.path.split("?", 1)[0]
        if path not in (fake.prefix + "/images/generations", fake.prefix + "/images/edits"):
            return Error(404, f"Invalid URL ({self.command} {self.path})", code=None)
        authorization = self.headers.get("Authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            return Error(401, "You didn't provide an API key.", code=None)
        if fake.expected_key is not None and authorization[7:] != fake.expected_key:
            return invalid_upstream_key()
        if not isinstance(document, dict):
            return Error(400, "We could not parse the JSON body of your request.", code=None)
        model = str(document.get("model") or "")
        if "response_format" in document and model.startswith(("gpt-image", "chatgpt-image")):
            return Error(
                400,
                "Unknown parameter: 'response_format'.",
                code="unknown_parameter",
                param="response_format",
            )
        return None

    def _answer(self, reply: Reply, document: Any) -> None:
        fake = self.server.fake
        if isinstance(reply, Delay):
            if fake.wait(reply.seconds):
                return  # stopping: nobody waits for this answer any more
            self._answer(reply.then, document)
            return
        if isinstance(reply, Hangup):
            return  # the connection closes when the handler returns
        if isinstance(reply, Stream):
            request = document if isinstance(document, dict) else {}
            if not _asks_to_stream(request):
                # As api.openai.com: only a request that says stream=true gets a stream.
                self._answer(Images(), document)
                return
            self._stream(reply, request)
            return
        if isinstance(reply, Trickle):
            status, headers, body = _render(reply.then, document)
            self._send_head(status, headers, len(body))
            step = max(1, -(-len(body) // reply.chunks))
            for start in range(0, len(body), step):
                if fake.wait(reply.interval):
                    return
                if not self._write(body[start : start + step]):
                    return
            return
        status, headers, body = _render(reply, document)
        declared = reply.declared_length if isinstance(reply, Raw) else None
        self._send_head(status, headers, declared if declared is not None else len(body))
        self._write(body)

    def _stream(self, reply: Stream, request: dict[str, Any]) -> None:
        fake = self.server.fake
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.send_header("x-request-id", fake.next_request_id())
            self.end_headers()
        except OSError:
            fake.undelivered += 1
            return
        # OpenAI's edit endpoint names its events image_edit.*, the generation endpoint
        # image_generation.*; the shapes are the same.
        kind = "image_edit" if self.path.split("?", 1)[0].endswith("/edits") else "image_generation"
        final = images_payload(Images(), request)
        settings = {
            "size": request.get("size") or "auto",
            "quality": request.get("quality") or "auto",
            "background": request.get("background") or "auto",
            "output_format": final["output_format"],
        }
        asked = int(request.get("partial_images") or 0)
        partials = asked if reply.partials is None else min(asked, reply.partials)
        size = final["size"]
        for index in range(partials):
            if index and fake.wait(reply.interval):
                return
            partial = {
                "type": f"{kind}.partial_image",
                "b64_json": base64.b64encode(
                    encode_image(size, final["output_format"], index + 1)
                ).decode("ascii"),
                "created_at": final["created"],
                **settings,
                "partial_image_index": index,
            }
            if not self._event(f"{kind}.partial_image", partial):
                return
            if index == 0 and reply.hold is not None:
                reply.hold.wait(10)
        if fake.wait(reply.interval):
            return
        if reply.truncate:
            return
        if reply.error is not None:
            self._event("error", {"type": "error", "error": reply.error})
        else:
            completed = {
                "type": f"{kind}.completed",
                "b64_json": final["data"][0]["b64_json"],
                "created_at": final["created"],
                "size": final["size"],
                "quality": final["quality"],
                "background": final["background"],
                "output_format": final["output_format"],
                "usage": final["usage"],
            }
            self._event(f"{kind}.completed", completed)
        if reply.done_marker:
            self._write(b"data: [DONE]\n\n")
        with fake._lock:
            fake.streams_finished += 1

    def _event(self, name: str, data: dict[str, Any]) -> bool:
        return self._write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def _send_head(self, status: int, headers: dict[str, str], length: int) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.send_header("x-request-id", self.server.fake.next_request_id())
            self.send_header("openai-version", "2020-10-01")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
        except OSError:
            self.server.fake.undelivered += 1

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.server.fake.undelivered += 1
            return False
        return True


def _asks_to_stream(request: dict[str, Any]) -> bool:
    """``"stream": true`` in a JSON body, ``stream=true`` in a form (the SDK's spelling)."""
    return request.get("stream") in (True, "true")


def _render(reply: Reply, document: Any) -> tuple[int, dict[str, str], bytes]:
    if isinstance(reply, Raw):
        return reply.status, {"Content-Type": reply.content_type, **reply.headers}, reply.body
    if isinstance(reply, Error):
        envelope = {
            "error": {
                "message": reply.message,
                "type": reply.type,
                "param": reply.param,
                "code": reply.code,
            }
        }
        headers = {"Content-Type": "application/json", **reply.headers}
        return reply.status, headers, json.dumps(envelope).encode()
    if isinstance(reply, Images):
        payload = images_payload(reply, document if isinstance(document, dict) else {})
        headers = {"Content-Type": "application/json", **reply.headers}
        return 200, headers, json.dumps(payload).encode()
    raise TypeError(f"cannot render {reply!r} as one response")


def images_payload(reply: Images, request: dict[str, Any]) -> dict[str, Any]:
    """The ``ImagesResponse`` the real API sends for ``request`` (a parsed request body)."""
    count = reply.count if reply.count is not None else int(request.get("n") or 1)
    requested_size = request.get("size")
    size = reply.size or (
        requested_size if requested_size and requested_size != "auto" else "1024x1024"
    )
    output_format = reply.output_format or request.get("output_format") or "png"
    background = reply.background or (
        "transparent" if request.get("background") == "transparent" else "opaque"
    )
    requested_quality = request.get("quality")
    quality = reply.quality or (
        requested_quality if requested_quality not in (None, "auto") else "medium"
    )
    transparent = background == "transparent"
    data = []
    for index in range(count):
        item: dict[str, Any] = {
            "b64_json": base64.b64encode(
                encode_image(size, output_format, index, transparent=transparent)
            ).decode("ascii")
        }
        if reply.revised_prompt is not None:
            item["revised_prompt"] = reply.revised_prompt
        data.append(item)
    payload: dict[str, Any] = {"created": int(time.time()), "data": data}
    if str(request.get("model", "")).startswith("dall-e"):
        return {**payload, **reply.extra}  # DALL-E answers carry nothing more
    prompt_tokens = max(1, len(str(request.get("prompt", ""))) // 4)
    payload.update(
        background=background,
        output_format=output_format,
        quality=quality,
        size=size,
        usage=reply.usage
        or {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 0},
            "output_tokens": 272 * count,
            "total_tokens": prompt_tokens + 272 * count,
        },
    )
    payload.update(reply.extra)
    return payload
