"""``Idempotency-Key``: a repeated request gets the first one's answer, never a second bill.

A request carrying the header claims a record named after the caller's key name and the
Idempotency-Key (so two clients using the same value never meet), holding a fingerprint of the
request: the canonical JSON of the parameters it set, and the caller. Then:

- no live record: this request runs, and its answer is kept for the window
  (``IMAGEGW_IDEMPOTENCY_WINDOW_SECONDS``);
- a finished record with the same fingerprint: its answer is replayed (``idempotent-replayed:
  true``), without calling the upstream; links to stored images are signed afresh;
- a running record with the same fingerprint: the request waits for it (polling, at most
  ``IMAGEGW_IDEMPOTENCY_WAIT_SECONDS`` and never past its own budget), then replays it; still
  running after that is ``409 idempotency_in_progress`` with ``Retry-After``;
- a record with a different fingerprint: ``422 idempotency_key_reused``.

What is kept: successes, and the failures after which the upstream may have billed (a timeout,
an upstream 5xx or malformed answer, images that could not be stored), so that a retry cannot
buy the same images twice. A failure that proves nothing was billed (the key's own limits, a
rate-limited or unreachable upstream, a configuration problem) releases the record, and the same
key may run again. A running record carries a lease (its budget plus a margin): a process that
died mid-request (a Lambda timeout) blocks its key only until then.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from imagegw.errors import (
    GatewayError,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidValue,
    ReplayedError,
    StorageUnavailable,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    render,
)
from imagegw.schemas import ImageGenerationRequest
from imagegw.storage.base import ImageStore, StoredLink

logger = logging.getLogger(__name__)

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
MAX_KEY_LENGTH = 255
# A running record's lease outlives the request's own budget by this much.
LEASE_MARGIN_SECONDS = 30.0
_IN_PROGRESS_RETRY_AFTER = 5


# ------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class StoredResponse:
    """An answer as it was sent: status, body bytes, headers; for errors, the retry advice.

    An error is replayed from this data alone (status, and the envelope's type and code in the
    body), never from a Python class path, so moving or renaming a class changes no replay.
    """

    status: int
    content: bytes
    headers: dict[str, str]
    should_retry: bool = False  # for errors: what x-should-retry said
    links: tuple[str, ...] = ()  # storage keys behind the body's url items, in order

    @property
    def is_error(self) -> bool:
        return self.status >= 400


@dataclass(frozen=True)
class Record:
    fingerprint: str
    state: Literal["running", "done"]
    owner: str
    lease_until: float
    expires_at: float
    response: StoredResponse | None = None
    # A finished record whose answer could not be kept (too large for the store).
    response_lost: bool = False

    def live(self, now: float) -> bool:
        if self.expires_at <= now:
            return False
        return self.state == "done" or self.lease_until > now


class IdempotencyStore(ABC):
    @abstractmethod
    async def claim(self, record_id: str, record: Record, *, now: float) -> Record | None:
        """Create ``record`` unless a live one exists: None when created, else the live one."""

    @abstractmethod
    async def complete(self, record_id: str, record: Record) -> None:
        """Replace the running record of ``record.owner`` with the finished ``record``."""

    @abstractmethod
    async def release(self, record_id: str, *, owner: str) -> None:
        """Delete the running record of ``owner`` (nothing to keep: the key may run again)."""


class MemoryIdempotencyStore(IdempotencyStore):
    """One process's records (local development, tests), at most ``max_bytes`` of answers.

    When full, the oldest answers are forgotten first; a request repeated after that runs again.
    """

    def __init__(self, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._records: OrderedDict[str, Record] = OrderedDict()
        self._max_bytes = max_bytes
        self._bytes = 0

    async def claim(self, record_id: str, record: Record, *, now: float) -> Record | None:
        existing = self._records.get(record_id)
        if existing is not None and existing.live(now):
            return existing
        self._drop(record_id)
        self._records[record_id] = record
        return None

    async def complete(self, record_id: str, record: Record) -> None:
        existing = self._records.get(record_id)
        if existing is None or existing.owner != record.owner:
            return  # the lease ran out and another request took the key over
        self._drop(record_id)
        self._records[record_id] = record
        self._bytes += _size(record)
        while self._bytes > self._max_bytes and self._records:
            self._drop(next(iter(self._records)))

    async def release(self, record_id: str, *, owner: str) -> None:
        existing = self._records.get(record_id)
        if existing is not None and existing.owner == owner:
            self._drop(record_id)

    def _drop(self, record_id: str) -> None:
        existing = self._records.pop(record_id, None)
        if existing is not None:
            self._bytes -= _size(existing)

    def __len__(self) -> int:
        return len(self._records)


def _size(record: Record) -> int:
    return len(record.response.content) if record.response is not None else 0


# ------------------------------------------------------------------------------------ keys


def check_key(value: str | None) -> str | None:
    """The header's value if usable; a 400 naming the header otherwise."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not (value.isascii() and value.isprintable()):
        raise InvalidValue(
            f"Invalid 'Idempotency-Key' header: it must be 1 to {MAX_KEY_LENGTH} printable ASCII "
            "characters (a UUID is a good choice).",
            param="Idempotency-Key",
        )
    return value


def record_id(client: str, key: str) -> str:
    """Scoped to the caller's key name: equal Idempotency-Keys of two clients never meet."""
    return hashlib.sha256(f"{client}\0{key}".encode()).hexdigest()


def fingerprint(body: ImageGenerationRequest, client: str) -> str:
    """The request as the caller meant it: parameters set (null = absent), in canonical JSON."""
    canonical = json.dumps(body.given(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{client}\0{canonical}".encode()).hexdigest()


def keeps(error: BaseException) -> bool:
    """True for failures after which the upstream may have billed: replayed, never re-run."""
    if isinstance(error, UpstreamUnreachable | UpstreamAuthFailed):
        return False
    return isinstance(error, UpstreamTimeout | UpstreamError | StorageUnavailable)


# ------------------------------------------------------------------------------------ flow


@dataclass(frozen=True)
class Ticket:
    """This request owns the key: it runs, then finishes or releases the record."""

    record_id: str
    record: Record


class Idempotency:
    def __init__(
        self,
        store: IdempotencyStore,
        *,
        window_seconds: float,
        wait_seconds: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._window = window_seconds
        self._wait = wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic

    async def begin(
        self, key: str, client: str, print_: str, *, budget_seconds: float
    ) -> Ticket | StoredResponse:
        """Own the key (a ``Ticket``) or get the answer it already has (``StoredResponse``)."""
        rid = record_id(client, key)
        give_up = self._monotonic() + min(self._wait, budget_seconds)
        poll = 0.05
        while True:
            now = self._clock()
            mine = Record(
                fingerprint=print_,
                state="running",
                owner=secrets.token_hex(16),
                lease_until=now + budget_seconds + LEASE_MARGIN_SECONDS,
                expires_at=now + max(self._window, budget_seconds + LEASE_MARGIN_SECONDS),
            )
            existing = await self.store.claim(rid, mine, now=now)
            if existing is None:
                return Ticket(rid, mine)
            if existing.fingerprint != print_:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was already used for a different request (other "
                    "parameters). Use a new key for a new request.",
                    param="Idempotency-Key",
                )
            if existing.state == "done":
                if existing.response is None:
                    raise IdempotencyKeyReused(
                        "The request with this Idempotency-Key finished, but its answer was too "
                        "large to keep. It is not run again, so that it is not billed twice; "
                        "use a new key to generate again.",
                        param="Idempotency-Key",
                        code="idempotency_result_unavailable",
                    )
                return existing.response
            if self._monotonic() + poll > give_up:
                raise IdempotencyInProgress(
                    "A request with this Idempotency-Key is still running. Retry after "
                    f"{_IN_PROGRESS_RETRY_AFTER} seconds to get its result.",
                    param="Idempotency-Key",
                    headers={"retry-after": str(_IN_PROGRESS_RETRY_AFTER)},
                )
            await self._sleep(poll)
            poll = min(poll * 2, 1.0)

    async def finish(self, ticket: Ticket, response: StoredResponse) -> None:
        done = replace(ticket.record, state="done", response=response)
        await self.store.complete(ticket.record_id, done)

    async def fail(self, ticket: Ticket, error: BaseException) -> None:
        """Keep the error when the upstream may have billed; otherwise free the key."""
        if isinstance(error, GatewayError) and keeps(error):
            await self.finish(ticket, stored_error(error))
        else:
            await self.store.release(ticket.record_id, owner=ticket.record.owner)


# ------------------------------------------------------------------------------------ answers


def stored_error(error: GatewayError) -> StoredResponse:
    return StoredResponse(
        status=error.status,
        content=render(error),
        headers=dict(error.headers),
        should_retry=error.should_retry,
    )


def replayed_error(response: StoredResponse) -> GatewayError:
    """The kept error with the same status, envelope and retry advice as the first answer."""
    error = json.loads(response.content).get("error") or {}
    return ReplayedError(
        str(error.get("message") or "The original request failed."),
        status=response.status,
        error_type=str(error.get("type") or "server_error"),
        should_retry=response.should_retry,
        param=error.get("param"),
        code=error.get("code"),
        headers={**response.headers, REPLAYED_HEADER: "true"},
    )


async def replayed_success(
    response: StoredResponse, store: Callable[[], ImageStore], *, base_url: str
) -> tuple[dict[str, Any], dict[str, str], bytes]:
    """Body, headers and bytes of a kept answer, with its image links signed afresh."""
    body: dict[str, Any] = json.loads(response.content)
    headers = {**response.headers, REPLAYED_HEADER: "true"}
    if not response.links:
        return body, headers, response.content
    linked = [item for item in body.get("data", []) if isinstance(item, dict) and "url" in item]
    for item, key in zip(linked, response.links, strict=False):
        link = await store().link(key, base_url=base_url)
        item["url"] = link.url
        item["expires_at"] = link.expires_at
    return body, headers, json.dumps(body, ensure_ascii=False).encode("utf-8")


class LinkRecorder(ImageStore):
    """The image store, noting the key behind every link handed out (to re-sign on replay)."""

    def __init__(self, store: Callable[[], ImageStore]) -> None:
        # A factory: the real store is built only when an image is stored (b64_json never is).
        self.store = store
        self._keys: dict[str, str] = {}

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self.store().put(key, data, content_type)

    async def exists(self, key: str) -> bool:
        return await self.store().exists(key)

    async def link(self, key: str, *, base_url: str) -> StoredLink:
        link = await self.store().link(key, base_url=base_url)
        self._keys[link.url] = key
        return link

    def keys_in(self, content: bytes) -> tuple[str, ...]:
        """The keys behind the url items of a response body, in order (empty: nothing to sign)."""
        if not self._keys:
            return ()
        items = json.loads(content).get("data", [])
        urls = [item["url"] for item in items if isinstance(item, dict) and "url" in item]
        if not all(url in self._keys for url in urls):
            return ()
        return tuple(self._keys[url] for url in urls)
