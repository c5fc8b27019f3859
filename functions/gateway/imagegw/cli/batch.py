"""``imagegw batch``: a file of prompts in, images out, as async jobs, resumable.

Each line of the JSONL file is one request: ``{"prompt": ...}`` plus any request parameter
(``model``, ``n``, ``size``, ...) and an optional ``id`` naming its files; a line may also be a
bare JSON string (the prompt). Options of the command fill in what a line leaves out.

Resuming rests on two things:

- on disk, a request whose metadata file ``<id>.json`` exists (with its images) is done and is
  not sent again;
- on the server, every request carries an ``Idempotency-Key`` derived from its id and body, so
  a request whose job was submitted before an interruption finds that same job again (the
  gateway names the job after the key) instead of generating and billing a second time.

A request that failed is recorded in ``<id>.failed.json`` and reported again by later runs;
``--retry-failed`` sends it again under a new key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from imagegw.cli.client import ApiError, ImagesClient
from imagegw.cli.files import InvalidImage, cost_of, metadata, save_answer, write_json

T = TypeVar("T")

TERMINAL = ("succeeded", "failed")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Submissions and polls that failed without an answer, or with one that says "retry", are
# repeated this many times: safe, because the submission carries its Idempotency-Key.
MAX_TRANSIENT_RETRIES = 6


class BatchFileError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class BatchItem:
    id: str
    line: int
    body: dict[str, Any]

    @property
    def images(self) -> int:
        n = self.body.get("n", 1)
        return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1

    def idempotency_key(self, attempt: int) -> str:
        canonical = json.dumps(
            {"id": self.id, "body": self.body, "attempt": attempt},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
        )
        return "imagegw-batch-" + hashlib.sha256(canonical.encode()).hexdigest()[:48]


def read_prompts(text: str, defaults: dict[str, Any]) -> list[BatchItem]:
    """Every request of the file, checked before anything is sent."""
    items: list[BatchItem] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise BatchFileError(number, f"not JSON ({exc})") from exc
        if isinstance(parsed, str):
            parsed = {"prompt": parsed}
        if not isinstance(parsed, dict):
            raise BatchFileError(number, "expected a JSON object or a JSON string")
        if not isinstance(parsed.get("prompt"), str) or not parsed["prompt"].strip():
            raise BatchFileError(number, "'prompt' must be a non-empty string")
        item_id = parsed.pop("id", None)
        if item_id is None:
            item_id = f"{number:04d}"
        if not isinstance(item_id, str) or not _ID.match(item_id):
            raise BatchFileError(
                number, "'id' must be 1-100 letters, digits, '.', '_' or '-' (a file name)"
            )
        if item_id in seen:
            raise BatchFileError(number, f"the id {item_id!r} is used twice")
        seen.add(item_id)
        body = {**defaults, **parsed}
        items.append(BatchItem(id=item_id, line=number, body=body))
    return items


class Reporter(Protocol):
    def begin(self, items: list[BatchItem]) -> None: ...

    def status(self, item: BatchItem, status: str) -> None: ...

    def image_saved(self, item: BatchItem) -> None: ...

    def finished(self, item: BatchItem, outcome: Outcome) -> None: ...


@dataclass(frozen=True)
class Outcome:
    ok: bool
    skipped: bool = False
    images: int = 0
    cost: float | None = None
    error: str | None = None


@dataclass
class Totals:
    jobs: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    images: int = 0
    cost: float = 0.0
    priced: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, item: BatchItem, outcome: Outcome) -> None:
        if outcome.ok:
            self.done += 1
            self.skipped += outcome.skipped
            self.images += outcome.images
            if outcome.cost is not None:
                self.cost += outcome.cost
                self.priced += 1
        else:
            self.failed += 1
            self.failures.append((item.id, outcome.error or "failed"))


def done_before(directory: Path, item: BatchItem) -> Outcome | None:
    """The outcome recorded by an earlier run, if its metadata and every image are there."""
    path = directory / f"{item.id}.json"
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        files = [entry["file"] for entry in document["images"]]
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: do it again (the same Idempotency-Key finds the same job)
    if not all((directory / name).is_file() for name in files):
        return None
    response = document.get("response")
    cost = cost_of(response) if isinstance(response, dict) else None
    return Outcome(ok=True, skipped=True, images=len(files), cost=cost)


class Batch:
    def __init__(
        self,
        client: ImagesClient,
        directory: Path,
        reporter: Reporter,
        *,
        concurrency: int = 8,
        poll_interval: float = 1.0,
        retry_failed: bool = False,
    ) -> None:
        self.client = client
        self.directory = directory
        self.reporter = reporter
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.retry_failed = retry_failed
        self.totals = Totals()

    async def run(self, items: list[BatchItem]) -> Totals:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.totals = Totals(jobs=len(items))
        self.reporter.begin(items)
        queue: asyncio.Queue[BatchItem] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                outcome = await self.one(item)
                self.totals.add(item, outcome)
                self.reporter.finished(item, outcome)

        await asyncio.gather(*(worker() for _ in range(max(1, self.concurrency))))
        return self.totals

    async def one(self, item: BatchItem) -> Outcome:
        previous = done_before(self.directory, item)
        if previous is not None:
            return previous
        failed_path = self.directory / f"{item.id}.failed.json"
        attempt = 0
        if failed_path.is_file():
            recorded = _read_json(failed_path)
            if not self.retry_failed:
                return Outcome(ok=False, error=str(recorded.get("error", "failed earlier")))
            previous_attempt = recorded.get("attempt", 0)
            attempt = (previous_attempt if isinstance(previous_attempt, int) else 0) + 1
        try:
            outcome = await self._generate(item, attempt)
        except ApiError as exc:
            outcome = Outcome(ok=False, error=exc.describe())
        except (httpx.HTTPError, InvalidImage) as exc:
            outcome = Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
        if outcome.ok:
            failed_path.unlink(missing_ok=True)
        else:
            write_json(failed_path, {"error": outcome.error, "attempt": attempt})
        return outcome

    async def _generate(self, item: BatchItem, attempt: int) -> Outcome:
        key = item.idempotency_key(attempt)
        self.reporter.status(item, "submitting")
        answer = await self._retrying(
            lambda: self.client.generate(item.body, idempotency_key=key, respond_async=True)
        )
        job_id: str | None = None
        if answer.status == 202:
            job = answer.body
            job_id = str(job.get("id"))
            job = await self._wait(item, job_id, job)
            if job.get("status") != "succeeded":
                error = job.get("error") if isinstance(job.get("error"), dict) else {}
                raise ApiError(0, error or {"message": "the job failed"})
            result = job.get("result")
            if not isinstance(result, dict):
                raise ApiError(0, {"message": "the job succeeded without a result"})
        else:
            result = answer.body  # the server answered synchronously
        self.reporter.status(item, "saving")
        files = await save_answer(
            result,
            self.client,
            self.directory,
            item.id,
            on_image=lambda: self.reporter.image_saved(item),
        )
        write_json(
            self.directory / f"{item.id}.json",
            metadata(
                request=item.body,
                answer=result,
                files=files,
                request_id=answer.request_id,
                job_id=job_id,
            ),
        )
        return Outcome(ok=True, images=len(files), cost=cost_of(result))

    async def _wait(self, item: BatchItem, job_id: str, job: dict[str, Any]) -> dict[str, Any]:
        while job.get("status") not in TERMINAL:
            self.reporter.status(item, job_status(job))
            await asyncio.sleep(self.poll_interval)
            job = await self._retrying(lambda: self.client.job(job_id))
        return job

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        delay = 0.5
        for attempt in range(MAX_TRANSIENT_RETRIES + 1):
            try:
                return await call()
            except ApiError as exc:
                if not exc.retry or attempt == MAX_TRANSIENT_RETRIES:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else delay
            except httpx.TransportError:
                if attempt == MAX_TRANSIENT_RETRIES:
                    raise
                wait = delay
            await asyncio.sleep(wait)
            delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")


def job_status(job: dict[str, Any]) -> str:
    """A running job in a few words, from its ``progress`` when the server reports one (the
    gateway's stage, images finished, the upstream's percent where it gives one)."""
    progress = job.get("progress")
    if not isinstance(progress, dict):
        return str(job.get("status", "queued"))
    words = [str(progress.get("stage") or job.get("status", "queued"))]
    done, images = progress.get("images_done"), progress.get("images")
    if isinstance(done, int) and isinstance(images, int) and images > 1:
        words.append(f"{done}/{images}")
    percent = progress.get("percent")
    if isinstance(percent, int | float) and not isinstance(percent, bool):
        words.append(f"{percent:.0f}%")
    return " ".join(words)


def _read_json(path: Path) -> dict[str, Any]:
    with contextlib.suppress(ValueError, OSError):
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict):
            return document
    return {}
