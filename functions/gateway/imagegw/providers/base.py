"""The provider contract: one async method in, a typed result out.

A provider turns an ``ImageRequest`` (already validated against the model's capabilities) into an
``ImageResult``. It raises ``GatewayError`` subclasses for every failure, translating upstream
failures by status and structured code, and never raises an HTTP exception.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from imagegw.catalog import ModelSpec
from imagegw.errors import UpstreamBadResponse
from imagegw.fastpath import upstream_json
from imagegw.fastpath.base64text import Base64Text
from imagegw.parameters import Role, names
from imagegw.providers.inputs import InputImage
from imagegw.providers.progress import Progress, watching

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


# The request parameters an ImageRequest carries besides prompt and n, from the one table
# (schemas.py). Output parameters decide what the images are; identity parameters only tell the
# upstream who asked; extensions go beyond OpenAI's contract, for the models whose catalog entry
# lists them. ImageRequest has one field per forwarded parameter (a unit test holds them equal).
OUTPUT_PARAMETERS = names(Role.OUTPUT)
IDENTITY_PARAMETERS = names(Role.IDENTITY)
OPENAI_PARAMETERS = OUTPUT_PARAMETERS + IDENTITY_PARAMETERS
EXTENSION_PARAMETERS = names(Role.EXTENSION)


@dataclass(frozen=True)
class ImageRequest:
    """A validated generation request. ``None`` means "not given: the upstream decides"."""

    spec: ModelSpec
    upstream_model: str
    prompt: str
    n: int
    timeout_seconds: float
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    background: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    moderation: str | None = None
    user: str | None = None
    safety_identifier: str | None = None
    complexity: str | None = None
    watermark: bool | None = None
    person_generation: str | None = None
    # The operator's cap on one upstream answer (IMAGEGW_UPSTREAM_MAX_ANSWER_BYTES), set where
    # providers are called; None: ``answer_limit`` derives it from the model and n.
    max_answer_bytes: int | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    grow_mask: int | None = None
    # Intermediate images asked for with ``stream: true`` (0-3); used only by ``stream``.
    partial_images: int = 0
    # An edit (POST /v1/images/edits): the input images, checked (generation/input_images.py),
    # the mask of the first one in OpenAI's convention (alpha 0 = change), and input_fidelity.
    # No images: a generation. A provider never turns an edit into a generation.
    images: tuple[InputImage, ...] = ()
    mask: InputImage | None = None
    input_fidelity: str | None = None

    @property
    def is_edit(self) -> bool:
        return bool(self.images)


class GeneratedImage:
    """One image, held as base64 or bytes and converted only when the other form is needed.

    Upstreams send base64 and ``b64_json`` callers want base64: passing it through untouched
    avoids decoding and re-encoding megabytes per image. The base64 is ``Base64Text`` (ASCII
    bytes, checked once where it came in), so the response writer splices it in as it is.
    """

    __slots__ = ("_b64", "_data", "media_type", "revised_prompt")

    def __init__(
        self,
        *,
        media_type: str,
        b64: Base64Text | None = None,
        data: bytes | None = None,
        revised_prompt: str | None = None,
    ) -> None:
        if (b64 is None) == (data is None):
            raise ValueError("give exactly one of b64 or data")
        self._b64 = b64
        self._data = data
        self.media_type = media_type
        self.revised_prompt = revised_prompt

    @classmethod
    def from_upstream_b64(
        cls, b64: str | Base64Text, *, media_type: str, revised_prompt: str | None = None
    ) -> GeneratedImage:
        """Accept an upstream's base64 once it is known to decode (``base64text.is_base64``)."""
        if isinstance(b64, str):
            try:
                b64 = Base64Text.from_str(b64)
            except ValueError:
                raise UpstreamBadResponse(
                    "The upstream returned an image that is not valid base64."
                ) from None
        return cls(media_type=media_type, b64=b64, revised_prompt=revised_prompt)

    def b64_text(self) -> Base64Text:
        if self._b64 is None:
            assert self._data is not None
            self._b64 = Base64Text.encode(self._data)
        return self._b64

    def b64(self) -> str:
        return str(self.b64_text())

    def data(self) -> bytes:
        if self._data is None:
            assert self._b64 is not None
            # Checked to be base64 when it came in: the lenient decoder is the fast one.
            self._data = binascii.a2b_base64(self._b64.ascii)
        return self._data

    @property
    def extension(self) -> str:
        for extension, media_type in MEDIA_TYPES.items():
            if media_type == self.media_type:
                return extension
        return "bin"


@dataclass
class ImageResult:
    """What a provider delivered. Resolved settings are the ones actually used (never "auto")."""

    images: list[GeneratedImage]
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    usage: dict[str, Any] | None = None
    # Images the upstream withheld (safety filters): reported to the caller, never hidden.
    filtered: int = 0
    # Images asked for that did not arrive for another reason (an upstream call of a fan-out
    # failed or ran out of time) while others were delivered: reported too.
    failed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # The catalog model that served when a fallback replaced the requested one (fallbacks.py).
    served_by: str | None = None
    # What the upstream says it charged for the whole request, in USD, when it says (BFL's
    # ``cost`` in credits / 100, summed over the calls of a fan-out). With a catalog price marked
    # ``reported`` this is the request's cost (catalog/prices.py).
    upstream_cost_usd: Decimal | None = None
    # Partial images a stream sent before the final image: each is billed as output tokens.
    partial_images: int = 0


# ------------------------------------------------------------------------------------ streams

# Most partial images a request may ask for (OpenAI's limit).
MAX_PARTIAL_IMAGES = 3


@dataclass(frozen=True)
class PartialImage:
    """A real intermediate image. ``index`` counts from 0; ``fields`` are the upstream's own
    event fields besides the image (size, quality, background, output_format, created_at), kept
    so that a relayed event says what the upstream said."""

    index: int
    image: GeneratedImage
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completed:
    result: ImageResult


# What ``ImageProvider.stream`` yields: partial images and progress (only what the upstream, or
# for local/* the renderer, really produced or reported), then exactly one ``Completed``.
StreamEvent = PartialImage | Progress | Completed


async def events_of(run: Callable[[], Awaitable[ImageResult]]) -> AsyncGenerator[StreamEvent, None]:
    """``run()`` (a provider's ``generate``) as a stream: its reported progress, then the result.

    ``run`` runs in a task of its own, watched (``progress.py``), so that its reports reach the
    consumer while it is still running; closing the stream early cancels it.
    """
    queue: asyncio.Queue[Progress] = asyncio.Queue()
    with watching(queue.put_nowait):
        # The task copies the context, watcher included, when it is created.
        task = asyncio.ensure_future(run())
    try:
        while not task.done():
            waiter = asyncio.ensure_future(queue.get())
            await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
            if waiter.done():
                yield waiter.result()
            else:
                waiter.cancel()
        while not queue.empty():
            yield queue.get_nowait()
        yield Completed(task.result())
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ImageProvider(ABC):
    """Base of every provider: subclasses implement ``generate``; ``stream`` comes for free."""

    @abstractmethod
    async def generate(self, request: ImageRequest) -> ImageResult: ...

    def stream(self, request: ImageRequest) -> AsyncGenerator[StreamEvent, None]:
        """The generation as events (``StreamEvent``), ending with ``Completed``.

        The default is ``generate`` with the progress it reports (``report_progress``) and no
        partial images: an upstream that only returns the final image gets no invented ones.
        Providers whose upstream streams (OpenAI) or that render stages (local) override it.
        """
        return events_of(lambda: self.generate(request))

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers own nothing
        """Release what the provider owns (shared clients are closed by their owner)."""


# ------------------------------------------------------------------ what every provider shares
#
# The hostile-upstream rules (issue 12), in one place so that every provider gets them: an
# answer is read with ``fastpath.http_pool.post_for_body(..., max_bytes=answer_limit(request))``,
# parsed with ``parse_answer`` (success) or ``error_document`` (error bodies), upstream text
# quoted to the caller goes through ``errors.relayed`` (scrubbed of secrets), and request bodies
# are encoded with ``json_body``. tests/support/hostile_upstream.py runs every provider against
# a server that breaks each rule.

_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
# Pixels assumed when a model's catalog entry names no size in pixels (aspect ratios only).
DEFAULT_LARGEST_PIXELS = 4096 * 4096
# The worst case of an 8-bit image: RGBA that does not compress (PNG of noise), 4 bytes a pixel;
# base64 makes 4 characters of 3 bytes.
_BYTES_PER_PIXEL = 4
_BASE64_GROWTH = 4 / 3
# Headroom over that worst case (format overheads, metadata, an upstream's own surprises) ...
ANSWER_HEADROOM = 1.25
# ... and for the JSON around the images (revised prompts, usage, safety attributes).
ANSWER_OVERHEAD_BYTES = 1024 * 1024


def largest_pixels(spec: ModelSpec) -> int:
    """The most pixels one image of ``spec`` can have: its largest size, or its free-size bound."""
    largest = 0
    for size in spec.sizes:
        match = _SIZE.match(size)
        if match is not None:
            largest = max(largest, int(match.group(1)) * int(match.group(2)))
    if spec.free_size is not None:
        largest = max(largest, spec.free_size.max_pixels)
    return largest or DEFAULT_LARGEST_PIXELS


def answer_limit(request: ImageRequest, *, images: int | None = None) -> int:
    """The most bytes an upstream answer to ``request`` can legitimately have.

    ``images`` per answer (default ``request.n``; a provider that makes one call per image
    passes 1), each at most the model's largest image as incompressible RGBA in base64, with
    headroom, plus the JSON around them. ``request.max_answer_bytes`` (the operator's setting)
    replaces the estimate. Beyond it ``post_for_body`` cuts the answer off with a 502.
    """
    if request.max_answer_bytes is not None:
        return request.max_answer_bytes
    count = request.n if images is None else images
    per_image = largest_pixels(request.spec) * _BYTES_PER_PIXEL * _BASE64_GROWTH
    return int(per_image * max(1, count) * ANSWER_HEADROOM) + ANSWER_OVERHEAD_BYTES


def json_body(document: Any) -> bytes:
    """A request body for an upstream as UTF-8 JSON; total (a lone surrogate is escaped)."""
    try:
        return json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(document).encode("ascii")


def parse_answer(
    content: bytes | bytearray, *, upstream: str = "The upstream", outside: int | None = None
) -> Any:
    """A success body as JSON (images as ``Base64Text``), or a 502 ``upstream_bad_response``.

    ``outside``: the answer's bytes outside the base64 alphabet, if counted as it arrived
    (``base64text.AlphabetCensus``).

    Total: invalid JSON, a body nested deeper than the parser's recursion limit, NaN and
    Infinity are all the same 502, never a 500.
    """
    try:
        return upstream_json.loads(content, outside=outside)
    except upstream_json.NestedTooDeeply as exc:
        raise UpstreamBadResponse(f"{upstream} answered with JSON nested too deeply.") from exc
    except ValueError as exc:
        raise UpstreamBadResponse(f"{upstream} answered with a body that is not JSON.") from exc


def error_document(content: bytes | bytearray, *, upstream: str = "The upstream") -> Any:
    """An error body as JSON, or None when it is not JSON (a proxy's HTML page, say).

    Not JSON is normal for an error (the status still says what happened); JSON nested deeper
    than the parser's recursion limit is not, and is a 502 ``upstream_bad_response``.
    """
    try:
        return upstream_json.parse(content)
    except upstream_json.NestedTooDeeply as exc:
        raise UpstreamBadResponse(
            f"{upstream} answered an error with JSON nested too deeply."
        ) from exc
    except ValueError:
        return None


def upstream_text(value: object) -> str | None:
    """A string field of an upstream's answer kept for the caller (a revised prompt, a size).

    Text that is not valid Unicode (a lone surrogate) is repaired with U+FFFD, so that it can
    be written as UTF-8 wherever it goes; empty strings and other types are None.
    """
    if not isinstance(value, str) or not value:
        return None
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
