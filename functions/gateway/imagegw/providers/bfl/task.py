"""One BFL image: submit the task, poll the URL BFL returned until it is ``Ready``, download it.

Everything happens before ``deadline`` (the event loop's clock): the request's budget, which the
gateway derives from Lambda's and API Gateway's limits. Waiting past it would only produce an
answer nobody receives, so the task then ends with a 504 that says the image may still be made
(and billed) at BFL and was not submitted again.

- **Submit** (``POST {base}/v1/<model>``, ``x-key``) happens once. Only a connection that never
  carried the request (``UpstreamUnreachable``) or BFL's 429 can be repeated, and that is the
  retry table's decision (``retry.py``), not this module's.
- **Poll** always the returned ``polling_url``: BFL's global endpoint hands tasks to regional
  clusters. ``Pending`` waits with backoff; ``Ready`` carries the result; the moderation statuses
  are the caller's 400; ``Error``, ``Task not found`` and unknown statuses end the task (BFL's own
  SDK does the same with unknown statuses rather than poll them to a timeout). A failed poll
  (5xx, 429, a dropped connection) is a GET of an existing task: it is repeated, a few times.
- **Download** ``result.sample``, a signed link valid for about ten minutes, without the key,
  bounded in size, and checked to be an image. BFL's link is never handed to the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from imagegw.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.providers.base import GeneratedImage
from imagegw.providers.bfl import errors
from imagegw.providers.bfl.transport import (
    Answer,
    BodyTooLarge,
    Truncated,
    UntrustedUrl,
    download,
    fetch,
    trusted_polling_url,
    trusted_sample_url,
)
from imagegw.providers.image_header import read_header
from imagegw.providers.progress import report_progress

logger = logging.getLogger(__name__)

# The phases of a task, for the message when its time runs out.
QUEUED, SUBMITTING, WAITING, DOWNLOADING = "queued", "submitting", "waiting", "downloading"
# A task is not submitted with less time left than this: it would be billed and then abandoned
# (a fan-out's later tasks wait for a free slot and may find the budget nearly spent).
MIN_SUBMIT_SECONDS = 1.0


@dataclass(frozen=True)
class Endpoint:
    base_url: httpx.URL  # the API's origin, e.g. https://api.bfl.ai
    api_key: str

    def submit_url(self, model: str) -> httpx.URL:
        # Under the base URL's own path, if it has one (a proxy at https://host/bfl).
        return self.base_url.copy_with(path=self.base_url.path.rstrip("/") + f"/v1/{model}")

    def headers(self) -> dict[str, str]:
        return {"x-key": self.api_key, "Accept": "application/json"}


@dataclass(frozen=True)
class Polling:
    """How often a pending task is asked about. BFL's SDK polls every second; its klein models
    finish in under one, so the first look comes sooner and the wait grows from there."""

    first_delay: float = 0.5
    factor: float = 1.5
    max_delay: float = 2.0
    # Consecutive failed polls (5xx, 429, dropped connections) before the task is given up.
    max_failures: int = 5
    max_image_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class Delivered:
    image: GeneratedImage
    size: str | None  # read from the image
    # What BFL said the task costs (its submit answer's ``cost``, in credits of $0.01).
    cost_usd: Decimal | None = None
    seed: int | None = None  # the seed BFL used (its result's ``seed``)


class Task:
    """One image of a request. ``phase`` tells, if its time runs out, how far it got."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: Endpoint,
        polling: Polling,
        *,
        model: str,
        body: bytes,
        prompt: str,
        deadline: float,
        connect_timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self._http = http
        self._endpoint = endpoint
        self._polling = polling
        self._model = model
        self._body = body
        self._prompt = prompt
        self._deadline = deadline
        self._connect_timeout = connect_timeout
        self._clock = clock
        self.phase = QUEUED
        self.task_id: str | None = None
        self.cost_usd: Decimal | None = None

    async def run(self) -> Delivered:
        if self._deadline - self._clock() < MIN_SUBMIT_SECONDS:
            raise too_slow(QUEUED)
        self.phase = SUBMITTING
        polling_url = await self._submit()
        self.phase = WAITING
        result = await self._wait(polling_url)
        self.phase = DOWNLOADING
        return await self._download(result)

    def too_slow(self) -> UpstreamTimeout:
        """The 504 for this task when the request's time ran out, saying how far it got."""
        return too_slow(self.phase)

    # ------------------------------------------------------------------ submit

    async def _submit(self) -> httpx.URL:
        url = self._endpoint.submit_url(self._model)
        headers = {**self._endpoint.headers(), "Content-Type": "application/json"}
        try:
            answer = await self._fetch("POST", url, headers, content=self._body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamUnreachable(
                "The gateway could not connect to Black Forest Labs; the request was not sent."
            ) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise too_slow(SUBMITTING) from exc
        except BodyTooLarge as exc:
            raise _submit_unreadable("an answer far larger than a task") from exc
        except Truncated as exc:
            raise _submit_unreadable("an answer that broke off") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(
                "The connection to Black Forest Labs failed while the request was in flight. The "
                "task may still have been created and billed, so the gateway does not submit it "
                "again."
            ) from exc
        if answer.status != 200:
            raise errors.submit_error(answer.status, answer.body, answer.headers)
        document = _json_object(answer.body)
        if document is None:
            raise _submit_unreadable("a body that is not a JSON object")
        task_id = document.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise _submit_unreadable("no task id")
        self.task_id = task_id[:100]
        try:
            polling_url = trusted_polling_url(document.get("polling_url"), self._endpoint.base_url)
        except UntrustedUrl as exc:
            raise _submit_unreadable(str(exc)) from exc
        self.cost_usd = _cost_usd(document)
        logger.info(
            "bfl task submitted",
            extra={
                "upstream_task": self.task_id,
                "model": self._model,
                "cost_usd": float(self.cost_usd) if self.cost_usd is not None else None,
            },
        )
        return polling_url

    # ------------------------------------------------------------------ poll

    async def _wait(self, polling_url: httpx.URL) -> dict[str, Any]:
        delay = self._polling.first_delay
        failures = 0
        self._reported: str | None = None
        while True:
            await self._sleep(delay)
            delay = min(self._polling.max_delay, delay * self._polling.factor)
            try:
                answer = await self._fetch("GET", polling_url, self._endpoint.headers())
            except (httpx.TimeoutException, TimeoutError):
                if self._clock() >= self._deadline:
                    raise too_slow(WAITING) from None
                failures = self._failed_poll(failures, "a poll timed out")
                continue
            except BodyTooLarge as exc:
                raise _poll_unreadable("an answer far larger than a status") from exc
            except (httpx.HTTPError, Truncated):
                failures = self._failed_poll(failures, "a poll's connection failed")
                continue
            if answer.status == 429:
                failures = self._failed_poll(failures, "polls were rate-limited")
                asked = errors.retry_after(answer.body, answer.headers)
                delay = max(delay, min(asked or 0.0, self._polling.max_delay * 4))
                continue
            if answer.status >= 500:
                failures = self._failed_poll(failures, f"polls failed (HTTP {answer.status})")
                continue
            if answer.status in (401, 403):
                raise errors.auth_failed()
            if answer.status == 404:
                raise errors.task_failed(errors.TASK_NOT_FOUND)
            if answer.status != 200:
                raise _poll_unreadable(f"HTTP {answer.status}")
            failures = 0
            result = self._interpret(answer)
            if result is not None:
                return result

    def _interpret(self, answer: Answer) -> dict[str, Any] | None:
        """The result of a ``Ready`` task; None while ``Pending``; else the task's error."""
        document = _json_object(answer.body)
        if document is None:
            raise _poll_unreadable("a body that is not a JSON object")
        status = document.get("status")
        if isinstance(status, str) and status not in (self._reported, errors.PENDING):
            # BFL's own word, once per change (Pending is reported at every poll, below, with
            # BFL's fraction done when it gives one); nobody watching: a no-op.
            self._reported = status
            report_progress(stage=status[:40])
        if status == errors.PENDING:
            _report_pending(document.get("progress"))
            return None
        if status == errors.READY:
            result = document.get("result")
            if not isinstance(result, dict):
                raise _poll_unreadable("a Ready task without a result")
            return result
        if status in (errors.REQUEST_MODERATED, errors.CONTENT_MODERATED):
            raise errors.moderated(status)
        if status in (errors.TASK_ERROR, errors.TASK_NOT_FOUND):
            raise errors.task_failed(status)
        raise _poll_unreadable(f"an unknown task status ({str(status)[:40]!r})")

    def _failed_poll(self, failures: int, what: str) -> int:
        failures += 1
        if failures >= self._polling.max_failures:
            raise UpstreamError(
                f"Black Forest Labs could not be asked about the task: {what}, "
                f"{failures} times in a row. The task may still finish and be billed; the "
                "gateway does not submit it again."
            )
        return failures

    # ------------------------------------------------------------------ download

    async def _download(self, result: dict[str, Any]) -> Delivered:
        base = self._endpoint.base_url
        try:
            url = trusted_sample_url(result.get("sample"), base)
        except UntrustedUrl as exc:
            raise _download_unreadable(str(exc)) from exc
        for attempt in range(3):
            try:
                answer = await self._limited(
                    download(
                        self._http,
                        url,
                        base,
                        timeouts=self._timeout(),
                        limit=self._polling.max_image_bytes,
                    )
                )
            except (httpx.TimeoutException, TimeoutError) as exc:
                raise too_slow(DOWNLOADING) from exc
            except BodyTooLarge as exc:
                size = f"{exc.declared:,} bytes" if exc.declared is not None else "more"
                raise _download_unreadable(
                    f"an image of {size}, over the gateway's limit of {exc.limit:,} bytes"
                ) from exc
            except UntrustedUrl as exc:
                raise _download_unreadable(str(exc)) from exc
            except Truncated as exc:
                raise _download_unreadable("a download that was cut short") from exc
            except httpx.HTTPError:
                if attempt == 2:
                    raise _download_failed("its connection failed") from None
                continue
            if answer.status >= 500 and attempt < 2:
                continue
            if answer.status != 200:
                raise _download_failed(f"HTTP {answer.status}")
            return self._image(answer.body, result)
        raise _download_failed("it kept failing")  # not reached: the loop returns or raises

    def _image(self, download: bytes | bytearray, result: dict[str, Any]) -> Delivered:
        # The image is kept immutable; the download's buffer goes when this returns.
        data = bytes(download)
        header = read_header(data)
        if header is None:
            raise _download_unreadable("a download that is not a PNG, JPEG or WebP image")
        prompt = result.get("prompt")
        revised = prompt if isinstance(prompt, str) and _differs(prompt, self._prompt) else None
        image = GeneratedImage(media_type=header.media_type, data=data, revised_prompt=revised)
        seed = result.get("seed")
        used = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        return Delivered(image, header.size, self.cost_usd, used)

    # ------------------------------------------------------------------ time

    def _timeout(self) -> httpx.Timeout:
        remaining = max(0.001, self._deadline - self._clock())
        return httpx.Timeout(remaining, connect=min(self._connect_timeout, remaining))

    async def _fetch(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        *,
        content: bytes | None = None,
    ) -> Answer:
        return await self._limited(
            fetch(
                self._http, method, url, headers=headers, timeouts=self._timeout(), content=content
            )
        )

    async def _limited(self, call: Coroutine[Any, Any, Answer]) -> Answer:
        """``call`` within the deadline as a whole: httpx's read timeout restarts with every
        chunk, so a trickling upstream could otherwise outlive it."""
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            call.close()
            raise TimeoutError
        async with asyncio.timeout(remaining):
            return await call

    async def _sleep(self, seconds: float) -> None:
        remaining = self._deadline - self._clock()
        if remaining <= seconds:
            # Not even the next poll fits: end now rather than poll once more past the budget.
            raise too_slow(WAITING)
        await asyncio.sleep(seconds)


def too_slow(phase: str) -> UpstreamTimeout:
    if phase == QUEUED:
        return UpstreamTimeout(
            "The request's time ran out before this image was submitted to Black Forest Labs; "
            "it was not submitted."
        )
    if phase == SUBMITTING:
        return UpstreamTimeout(
            "Black Forest Labs did not answer the submission in time. The task may still have "
            "been created and billed, so the gateway does not submit it again."
        )
    if phase == DOWNLOADING:
        return UpstreamTimeout(
            "The image was ready at Black Forest Labs but could not be downloaded in the time "
            "the request had left."
        )
    return UpstreamTimeout(
        "Black Forest Labs had not finished the image in the time this request could wait. "
        "The task may still finish there and be billed; the gateway does not submit it again."
    )


def _submit_unreadable(what: str) -> UpstreamBadResponse:
    return UpstreamBadResponse(
        f"Black Forest Labs answered the submission with {what}. The task may still have been "
        "created and billed, so the gateway does not submit it again."
    )


def _poll_unreadable(what: str) -> UpstreamBadResponse:
    return UpstreamBadResponse(f"Black Forest Labs answered a status poll with {what}.")


def _download_unreadable(what: str) -> UpstreamBadResponse:
    return UpstreamBadResponse(
        f"Black Forest Labs' image link gave {what}. The image was generated (and may be "
        "billed) but cannot be delivered."
    )


def _download_failed(what: str) -> UpstreamError:
    # Never the link itself: it carries a signature.
    return UpstreamError(
        f"Black Forest Labs' image link could not be downloaded ({what}); it is valid for "
        "about ten minutes. The image was generated (and may be billed) but cannot be delivered."
    )


def _json_object(content: bytes | bytearray) -> dict[str, Any] | None:
    try:
        # NaN is tolerated here (a task that may be billed is not refused over its cost, which
        # _cost_usd checks); nesting beyond the recursion limit is not JSON.
        document = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _cost_usd(document: dict[str, Any]) -> Decimal | None:
    """BFL's ``cost`` (credits; 1 credit = $0.01) in USD, when it is a sane number."""
    cost = document.get("cost")
    if isinstance(cost, bool) or not isinstance(cost, int | float):
        return None
    # The range first: math.isfinite() of an integer of 400 digits raises OverflowError, and
    # NaN fails every comparison.
    if not 0 <= cost < 1_000_000 or not math.isfinite(cost):
        return None
    return Decimal(str(cost)) / 100


def _differs(revised: str, prompt: str) -> bool:
    text = " ".join(revised.split())
    return bool(text) and text != " ".join(prompt.split())


def _report_pending(progress: object) -> None:
    """BFL's polling state for a job's progress: its status word, and its optional ``progress``
    fraction (0 to 1) as a percentage. Anything else is not reported (its scale is unknown)."""
    fraction = progress if isinstance(progress, int | float) and 0 <= progress <= 1 else None
    report_progress(
        stage=errors.PENDING, percent=None if fraction is None else float(fraction) * 100
    )
