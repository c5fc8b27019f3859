"""The BFL provider: ``n`` images as ``n`` tasks, at most ``max_parallel`` active at a time.

BFL makes one image per task. Tasks share the request's deadline; images that arrived are
delivered even when other tasks failed, were moderated or ran out of time (they were paid for),
and the response says how many are missing and why (``images_filtered``, ``images_failed``).
The cost is BFL's own (each submit answer's ``cost``), for the images delivered. When none
arrived the caller gets one error: moderation if every task was moderated, else a
failure that must not be repeated if there is one (so the retry table never re-submits a batch
in which a task may already be billed), else the first.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from decimal import Decimal

import httpx

from imagegw.errors import ContentPolicyViolation, GatewayError
from imagegw.providers.base import MEDIA_TYPES, ImageProvider, ImageRequest, ImageResult, json_body
from imagegw.providers.bfl import shapes
from imagegw.providers.bfl.task import Delivered, Endpoint, Polling, Task
from imagegw.providers.progress import report_progress

# Per request: BFL allows 24 active tasks per account, shared by every request in flight.
MAX_PARALLEL_TASKS = 4
_FORMATS = {media_type: name for name, media_type in MEDIA_TYPES.items()}


class BflProvider(ImageProvider):
    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: Endpoint,
        *,
        polling: Polling | None = None,
        connect_timeout_seconds: float = 10.0,
        max_parallel: int = MAX_PARALLEL_TASKS,
    ) -> None:
        self._http = http
        self.endpoint = endpoint
        self._polling = polling or Polling()
        self._connect_timeout = connect_timeout_seconds
        self._max_parallel = max_parallel

    async def generate(self, request: ImageRequest) -> ImageResult:
        shape = shapes.submit_body(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout_seconds
        gate = asyncio.Semaphore(self._max_parallel)
        # One encoding for all tasks unless a seed makes each body its own (an edit's body holds
        # its input images: megabytes, not to be copied n times).
        shared = None if "seed" in shape.body else _encode(shape.body)
        # The operator's answer cap (IMAGEGW_UPSTREAM_MAX_ANSWER_BYTES) bounds each sample
        # download as it bounds every other upstream answer; without one, the polling default.
        polling = (
            dataclasses.replace(self._polling, max_image_bytes=request.max_answer_bytes)
            if request.max_answer_bytes is not None
            else self._polling
        )
        tasks = [
            Task(
                self._http,
                self.endpoint,
                polling,
                model=request.upstream_model,
                body=shared or _encode(shapes.for_image(shape.body, index)),
                prompt=request.prompt,
                deadline=deadline,
                connect_timeout=self._connect_timeout,
                clock=loop.time,
            )
            for index in range(request.n)
        ]

        done = 0

        async def run(task: Task) -> Delivered:
            nonlocal done
            async with gate:
                delivered = await task.run()
            done += 1
            report_progress(images_done=done)
            return delivered

        calls = [asyncio.ensure_future(run(task)) for task in tasks]
        try:
            # Each task keeps to the deadline itself; this is the backstop.
            _, late = await asyncio.wait(calls, timeout=request.timeout_seconds + 1.0)
        finally:
            for call in calls:
                call.cancel()  # no-op for finished calls; stops the rest if we are cancelled
        if late:
            await asyncio.wait(late)
        return _combine(tasks, calls, request, shape)


def _combine(
    tasks: Sequence[Task],
    calls: Sequence[asyncio.Future[Delivered]],
    request: ImageRequest,
    shape: shapes.Shape,
) -> ImageResult:
    delivered: list[Delivered] = []
    moderated: list[ContentPolicyViolation] = []
    failures: list[GatewayError] = []
    for task, call in zip(tasks, calls, strict=True):
        if call.cancelled():
            failures.append(task.too_slow())
            continue
        error = call.exception()
        if isinstance(error, ContentPolicyViolation):
            moderated.append(error)
        elif isinstance(error, GatewayError):
            failures.append(error)
        elif error is not None:
            raise error  # a bug, not an upstream failure: let it be seen
        else:
            delivered.append(call.result())
    if not delivered:
        if moderated and not failures:
            first = moderated[0]
            if request.n > 1:
                first.message += f" All {request.n} images were stopped."
            raise first
        final = [error for error in failures if not error.should_retry]
        raise (final or failures)[0]
    images = [item.image for item in delivered]
    seeds = [item.seed for item in delivered]
    costs = [item.cost_usd for item in delivered if item.cost_usd is not None]
    return ImageResult(
        images=images,
        size=delivered[0].size or (shape.size if shape.exact else None),
        output_format=_FORMATS.get(images[0].media_type),
        filtered=len(moderated),
        failed=len(failures),
        # BFL's own figures for the images delivered (a task BFL did not price: unknown).
        upstream_cost_usd=sum(costs, Decimal(0)) if len(costs) == len(delivered) else None,
        # The seed of each image, in the order of data (BFL says which it used).
        extra={"seeds": seeds} if any(seed is not None for seed in seeds) else {},
    )


def _encode(body: dict[str, object]) -> bytes:
    return json_body(body)  # total: a lone surrogate is escaped, never an encode error
