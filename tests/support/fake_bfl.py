"""A fake Black Forest Labs API on 127.0.0.1: submit, poll, and the image links it hands out.

Like ``fake_openai`` it runs the stdlib ``ThreadingHTTPServer`` in a daemon thread, records every
request as it arrived and answers from scripts.

    with FakeBfl() as bfl:
        bfl.enqueue(Accept(statuses=("Pending", "Content Moderated")))
        ...  # base_url=bfl.origin, api_key=bfl.api_key

What it does, as BFL does (shared/reference/providers-2.md §2):
- ``POST /v1/<model>`` needs ``x-key`` (else 403) and a body that BFL's strict schema for the
  model takes (unknown fields, wrong sizes or ratios: 422 with FastAPI's ``detail`` list). An
  accepted task answers ``{"id", "polling_url", "cost", ...}``. The polling URL is on another
  path (``/cluster-2/v1/get_result?id=…``) than the submit, so a client that builds its own URL
  instead of using the returned one fails here.
- Active tasks (submitted, not yet finished) are limited (``active_limit``, BFL's 24): one more
  submit is BFL's 429 with ``retry_after`` in the body and a ``Retry-After`` header.
- ``GET`` the polling URL (``x-key`` needed) walks the task's scripted statuses, the last one
  repeating; ``Ready`` carries ``result.sample``, a signed link that expires ``sample_ttl``
  seconds after the task became ready (then 403, as Azure blob storage answers).
- ``GET`` the image link serves a real image of the size the task asked for (aspect-ratio models:
  about one megapixel at that ratio) in the requested format; it records whether the client sent
  its key there (it must not).
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support.fake_openai import RecordedRequest, encode_image

API_KEY = "bfl_fake_0123456789"
POLL_PATH = "/cluster-2/v1/get_result"
DELIVERY_PATH = "/delivery/"

# ------------------------------------------------------------------ BFL's schemas, written here

_WEBHOOK = {"webhook_url", "webhook_secret"}
_REFERENCES = {"input_image", *(f"input_image_{index}" for index in range(2, 9))}
_FLUX_2 = {
    "prompt",
    "width",
    "height",
    "seed",
    "safety_tolerance",
    "output_format",
    "prompt_upsampling",
    *_REFERENCES,
    *_WEBHOOK,
}
_FLUX_3_RATIOS = {
    "auto",
    "21:9",
    "2:1",
    "16:9",
    "3:2",
    "7:5",
    "4:3",
    "5:4",
    "1:1",
    "4:5",
    "3:4",
    "5:7",
    "2:3",
    "9:16",
    "1:2",
    "9:21",
}


@dataclass(frozen=True)
class Schema:
    fields: frozenset[str]
    size: str  # "flux2" | "flux11" | "ultra" | "kontext" | "flux3" | "flux31"
    formats: frozenset[str] = frozenset({"jpeg", "png"})
    default_format: str = "jpeg"


def _schema(fields: set[str], size: str, **options: Any) -> Schema:
    return Schema(frozenset(fields), size, **options)


SCHEMAS: dict[str, Schema] = {
    **{
        model: _schema(_FLUX_2, "flux2")
        for model in (
            "flux-2-pro",
            "flux-2-pro-preview",
            "flux-2-max",
            "flux-2-klein-4b",
            "flux-2-klein-9b",
            "flux-2-klein-9b-preview",
        )
    },
    "flux-2-flex": _schema(_FLUX_2 | {"steps", "guidance"}, "flux2"),
    "flux-pro-1.1": _schema(
        {
            "prompt",
            "width",
            "height",
            "seed",
            "safety_tolerance",
            "output_format",
            "prompt_upsampling",
            "image_prompt",
            *_WEBHOOK,
        },
        "flux11",
        formats=frozenset({"jpeg", "png", "webp"}),
    ),
    "flux-pro-1.1-ultra": _schema(
        {
            "prompt",
            "aspect_ratio",
            "raw",
            "seed",
            "safety_tolerance",
            "output_format",
            "image_prompt",
            "image_prompt_strength",
            *_WEBHOOK,
        },
        "ultra",
        formats=frozenset({"jpeg", "png", "webp"}),
    ),
    **{
        model: _schema(
            {
                "prompt",
                "aspect_ratio",
                "seed",
                "safety_tolerance",
                "output_format",
                "prompt_upsampling",
                *_REFERENCES,
                *_WEBHOOK,
            },
            "kontext",
            default_format="png",
        )
        for model in ("flux-kontext-pro", "flux-kontext-max")
    },
    "flux-3-image": _schema(
        {
            "prompt",
            "images",
            "aspect_ratio",
            "resolution",
            "grounding",
            "safety_tolerance",
            "version",
            *_WEBHOOK,
        },
        "flux3",
    ),
    **{
        model: _schema(
            {
                "prompt",
                "mode",
                "resolution",
                "width",
                "height",
                "aspect_ratio",
                "images",
                "mask",
                "grounding",
                "safety_tolerance",
                *_WEBHOOK,
            },
            "flux31",
        )
        for model in ("flux-3.1-image", "flux-3-1-image-20261203")
    },
}


class Refused(Exception):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body


def _invalid(field_name: str, message: str, kind: str = "value_error") -> Refused:
    return Refused(422, {"detail": [{"type": kind, "loc": ["body", field_name], "msg": message}]})


def check_body(model: str, document: Any) -> tuple[int, int]:
    """The output size BFL would make for a valid body, else ``Refused`` (422 as BFL)."""
    schema = SCHEMAS[model]
    if not isinstance(document, dict):
        raise Refused(422, {"detail": [{"type": "model_attributes_type", "loc": ["body"]}]})
    for name in sorted(set(document) - schema.fields):
        raise _invalid(name, "Extra inputs are not permitted", "extra_forbidden")
    if not isinstance(document.get("prompt"), str) or not document["prompt"]:
        raise _invalid("prompt", "Field required", "missing")
    if "output_format" in document and document["output_format"] not in schema.formats:
        raise _invalid("output_format", f"Input should be {sorted(schema.formats)}")
    if schema.size == "flux31" and document.get("mode", "quality") not in ("fast", "quality"):
        raise _invalid("mode", "Input should be 'fast' or 'quality'")
    _check_inputs(schema, document)
    if schema.size in ("flux2", "flux11", "flux31"):
        return _dimensions(schema.size, document)
    return _ratio(schema.size, document)


def _check_inputs(schema: Schema, document: dict[str, Any]) -> None:
    """Reference images and masks: base64 of a real PNG, JPEG or WebP (or an https URL)."""
    images = document.get("images", [])
    if not isinstance(images, list) or len(images) > 10:
        raise _invalid("images", "List should have at most 10 items")
    if "mask" in document and len(images) > 9:
        raise _invalid("images", "At most 9 images with a mask")
    if "mask" in document and not images:
        raise _invalid("mask", "A mask applies to the first image: images is required")
    named = [(f"images.{index}", value) for index, value in enumerate(images)]
    named += [(name, document[name]) for name in sorted(document) if name.startswith("input_image")]
    if "mask" in document:
        named.append(("mask", document["mask"]))
    for name, value in named:
        if isinstance(value, str) and value.startswith("https://"):
            continue
        try:
            data = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except ValueError:
            data = b""
        if not data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"RIFF")):
            raise _invalid(name, "Input should be a base64 encoded image or an https URL")


def _dimensions(kind: str, document: dict[str, Any]) -> tuple[int, int]:
    width, height = document.get("width", 1024), document.get("height", 768)
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _invalid(name, "Input should be a valid integer", "int_type")
    if kind == "flux2":
        if width % 16 or height % 16 or min(width, height) < 64 or width * height > 4_194_304:
            raise _invalid("width", "width and height: multiples of 16, >= 64, <= 4 MP")
    elif kind == "flux11":
        if (
            width % 32
            or height % 32
            or not (256 <= min(width, height) <= max(width, height) <= 1440)
        ):
            raise _invalid("width", "width and height: 256 to 1440, multiples of 32")
    elif width * height > 16_000_000 or max(width, height) / min(width, height) > 8:
        raise _invalid("width", "at most 16 MP and 8:1")
    return width, height


def _ratio(kind: str, document: dict[str, Any]) -> tuple[int, int]:
    ratio = document.get("aspect_ratio", "16:9" if kind == "ultra" else "1:1")
    parts = ratio.split(":") if isinstance(ratio, str) else []
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise _invalid("aspect_ratio", "Input should be a ratio like '16:9'")
    across, down = int(parts[0]), int(parts[1])
    bounds = {"ultra": 21 / 9, "kontext": 4.0, "flux3": 21 / 9}[kind]
    if not 1 / bounds - 1e-9 <= across / down <= bounds + 1e-9:
        raise _invalid("aspect_ratio", "aspect ratio out of range")
    if kind == "flux3" and ratio not in _FLUX_3_RATIOS:
        raise _invalid("aspect_ratio", f"Input should be one of {sorted(_FLUX_3_RATIOS)}")
    # About one megapixel at that ratio, sides multiples of 32 (what such models make).
    width = round(math.sqrt(1_048_576 * across / down) / 32) * 32
    height = round(math.sqrt(1_048_576 * down / across) / 32) * 32
    return width, height


# ---------------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class BflError:
    status: int
    body: Any = field(default_factory=lambda: {"detail": "error"})
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Raw:
    """Any bytes; ``declared_length`` other than ``len(body)`` lies about the size."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"
    declared_length: int | None = None


@dataclass(frozen=True)
class Delay:
    seconds: float
    then: Any


@dataclass(frozen=True)
class Hangup:
    """Read the request, then close the connection without answering."""


@dataclass(frozen=True)
class Image:
    """The task's image (the size it asked for, in its format), or another ``size``."""

    size: str | None = None


PollStep = str | BflError | Raw | Delay | Hangup
DownloadStep = Image | BflError | Raw | Delay | Hangup


@dataclass(frozen=True)
class Accept:
    """An accepted submit: the task then goes through ``statuses`` (the last one repeats)."""

    statuses: tuple[PollStep, ...] = ("Pending", "Ready")
    download: tuple[DownloadStep, ...] = (Image(),)  # the last one repeats
    revised_prompt: str | None = None  # result.prompt; the submitted prompt when None
    cost: float = 3.0
    polling_url: str | None = None  # instead of the fake's own (an untrusted host...)
    sample_url: str | None = None


SubmitReply = Accept | BflError | Raw | Delay | Hangup


def rate_limited(retry_after: int = 5) -> BflError:
    """BFL's answer when the account has too many active tasks."""
    return BflError(
        429,
        {
            "error": "rate_limit_exceeded",
            "message": "Too many concurrent requests",
            "retry_after": retry_after,
        },
        headers={"Retry-After": str(retry_after)},
    )


def server_error() -> BflError:
    return BflError(500, {"detail": "Internal Server Error SECRET-UPSTREAM-DETAIL"})


# ------------------------------------------------------------------------------------ tasks


@dataclass
class FakeTask:
    id: str
    model: str
    body: dict[str, Any]
    size: tuple[int, int]
    output_format: str
    reply: Accept
    statuses: deque[PollStep]
    downloads: deque[DownloadStep]
    finished: bool = False
    ready_at: float | None = None
    token: str = ""


class FakeBfl:
    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        active_limit: int = 24,
        sample_ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key = api_key
        self.active_limit = active_limit
        self.sample_ttl = sample_ttl
        self.clock = clock
        self.default: SubmitReply = Accept()
        self.requests: list[RecordedRequest] = []
        self.tasks: dict[str, FakeTask] = {}
        self.handler_errors: list[BaseException] = []
        self.max_active = 0
        self._queue: deque[SubmitReply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- script and records

    def enqueue(self, *replies: SubmitReply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.tasks.clear()
            self._queue.clear()
            self.max_active = 0
            self.default = Accept()
            self.active_limit = 24
            self.sample_ttl = 600.0

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def submits(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    def polls(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(POLL_PATH)]

    def downloads(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(DELIVERY_PATH)]

    @property
    def active(self) -> int:
        return sum(1 for task in self.tasks.values() if not task.finished)

    # -- lifecycle

    @property
    def origin(self) -> str:
        assert self._server is not None, "the fake is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeBfl:
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-bfl",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeBfl:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait(self, seconds: float) -> bool:
        return self._stopping.wait(seconds)

    # -- the endpoints

    def submit(self, path: str, headers: dict[str, str], document: Any) -> Any:
        if headers.get("x-key") != self.api_key:
            return BflError(403, {"detail": "Not authenticated"})
        model = path.removeprefix("/v1/")
        if not path.startswith("/v1/") or model not in SCHEMAS:
            return BflError(404, {"detail": "Not Found"})
        try:
            size = check_body(model, document)
        except Refused as refused:
            return BflError(refused.status, refused.body)
        with self._lock:
            if self.active >= self.active_limit:
                return rate_limited()
            reply = self._queue.popleft() if self._queue else self.default
            # A slow acceptance: the task exists at once, the answer comes late.
            delay = reply.seconds if isinstance(reply, Delay) else None
            if isinstance(reply, Delay) and isinstance(reply.then, Accept):
                reply = reply.then
            if not isinstance(reply, Accept):
                return reply
            task_id = f"task-{next(self._ids)}-{model}"
            schema = SCHEMAS[model]
            self.tasks[task_id] = FakeTask(
                id=task_id,
                model=model,
                body=document,
                size=size,
                output_format=document.get("output_format", schema.default_format),
                reply=reply,
                statuses=deque(reply.statuses),
                downloads=deque(reply.download),
                token=f"sig{next(self._ids)}",
            )
            self.max_active = max(self.max_active, self.active)
        polling_url = reply.polling_url or f"{self.origin}{POLL_PATH}?id={task_id}"
        accepted = {
            "id": task_id,
            "polling_url": polling_url,
            "cost": reply.cost,
            "input_mp": 0,
            "output_mp": round(size[0] * size[1] / 1e6, 2),
        }
        return accepted if delay is None else Delay(delay, accepted)

    def poll(self, query: dict[str, list[str]], headers: dict[str, str]) -> Any:
        if headers.get("x-key") != self.api_key:
            return BflError(403, {"detail": "Not authenticated"})
        task_id = (query.get("id") or [""])[0]
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None:
                return {"id": task_id, "status": "Task not found"}
            step = task.statuses.popleft() if len(task.statuses) > 1 else task.statuses[0]
            if not isinstance(step, str):
                return step
            if step == "Pending":
                return {"id": task_id, "status": "Pending", "progress": 0.5}
            task.finished = True
            if step != "Ready":
                return {"id": task_id, "status": step, "result": None, "details": {}}
            if task.ready_at is None:
                task.ready_at = self.clock()
            extension = task.output_format
            sample = task.reply.sample_url or (
                f"{self.origin}{DELIVERY_PATH}{task_id}/sample.{extension}"
                f"?se={task.ready_at + self.sample_ttl:.3f}&sig={task.token}"
            )
            return {
                "id": task_id,
                "status": "Ready",
                "result": {
                    "sample": sample,
                    "prompt": task.reply.revised_prompt or task.body.get("prompt"),
                    # The seed asked for, else one BFL picked.
                    "seed": task.body.get("seed", 1000 + len(self.tasks)),
                    "start_time": 1.0,
                    "end_time": 2.0,
                    "duration": 1.0,
                },
            }

    def download(self, path: str, query: dict[str, list[str]]) -> Any:
        task_id = path.removeprefix(DELIVERY_PATH).split("/", 1)[0]
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None or task.ready_at is None or query.get("sig") != [task.token]:
                return Raw(b"<Error><Code>AuthenticationFailed</Code></Error>", 403, "text/xml")
            if self.clock() > task.ready_at + self.sample_ttl:
                return Raw(
                    b"<Error><Code>AuthenticationFailed</Code><AuthenticationErrorDetail>Signed "
                    b"expiry time has passed</AuthenticationErrorDetail></Error>",
                    403,
                    "application/xml",
                )
            step = task.downloads.popleft() if len(task.downloads) > 1 else task.downloads[0]
        if isinstance(step, Image):
            size = step.size or f"{task.size[0]}x{task.size[1]}"
            data = encode_image(size, task.output_format)
            return Raw(data, 200, f"image/{task.output_format}")
        return step


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, fake: FakeBfl) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None:
            self.fake.handler_errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-bfl/1.0"
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
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers=headers,
                raw_headers=list(self.headers.items()),
                body=body,
                json=document,
            )
        )
        self.close_connection = True
        parsed = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parsed.query)
        if self.command == "POST":
            reply = fake.submit(parsed.path, headers, document)
        elif parsed.path == POLL_PATH:
            reply = fake.poll(query, headers)
        elif parsed.path.startswith(DELIVERY_PATH):
            reply = fake.download(parsed.path, query)
        else:
            reply = BflError(404, {"detail": "Not Found"})
        self._answer(reply)

    def _answer(self, reply: Any) -> None:
        fake = self.server.fake
        if isinstance(reply, Delay):
            if fake.wait(reply.seconds):
                return
            self._answer(reply.then)
            return
        if isinstance(reply, Hangup):
            return
        if isinstance(reply, Raw):
            declared = reply.declared_length
            self._send(reply.status, {"Content-Type": reply.content_type}, reply.body, declared)
            return
        if isinstance(reply, BflError):
            headers = {"Content-Type": "application/json", **reply.headers}
            self._send(reply.status, headers, json.dumps(reply.body).encode(), None)
            return
        self._send(200, {"Content-Type": "application/json"}, json.dumps(reply).encode(), None)

    def _send(
        self, status: int, headers: dict[str, str], body: bytes, declared: int | None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(declared if declared is not None else len(body)))
            self.send_header("Connection", "close")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            return
