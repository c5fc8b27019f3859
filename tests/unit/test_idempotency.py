"""Idempotency keys: scoping, fingerprints, the claim/replay/wait/refuse flow, what is kept."""

from __future__ import annotations

import json

import pytest

from imagegw.errors import (
    ContentPolicyViolation,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidValue,
    RateLimited,
    StateUnavailable,
    StorageUnavailable,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.schemas import parse_generation_request
from imagegw.state.idempotency import (
    LEASE_MARGIN_SECONDS,
    Idempotency,
    MemoryIdempotencyStore,
    StoredResponse,
    Ticket,
    check_key,
    fingerprint,
    keeps,
    record_id,
    replayed_error,
    stored_error,
)

from support.fakes import FakeClock

pytestmark = pytest.mark.anyio

OK = StoredResponse(200, b'{"data": []}', {"x-imagegw-model": "local/sketch"})


class Sleeps:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.total = 0.0

    async def __call__(self, seconds: float) -> None:
        self.total += seconds


def flow(
    clock: FakeClock,
    store: MemoryIdempotencyStore | None = None,
    *,
    wait: float = 0.0,
    window: float = 3600,
) -> Idempotency:
    sleeps = Sleeps(clock)
    return Idempotency(
        store if store is not None else MemoryIdempotencyStore(),
        window_seconds=window,
        wait_seconds=wait,
        clock=clock,
        sleep=sleeps,
        monotonic=lambda: sleeps.total,
    )


def body(text: str) -> bytes:
    return text.encode()


@pytest.mark.parametrize("value", ["a", "9f1c0f5e-8a1b-4f7e-9d3c-2b6a1e0c7d44", "x" * 255])
def test_usable_keys(value: str) -> None:
    assert check_key(value) == value


@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9", "tab\there", "new\nline"])
def test_unusable_keys_are_a_400_naming_the_header(value: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        check_key(value)
    assert caught.value.param == "Idempotency-Key"


def test_records_are_scoped_to_the_client() -> None:
    assert record_id("team-a", "k1") != record_id("team-b", "k1")
    assert record_id("team-a", "k1") == record_id("team-a", "k1")


def test_the_fingerprint_is_the_request_as_meant() -> None:
    first = parse_generation_request(body('{"prompt": "a fox", "n": 2, "size": null}'))
    same = parse_generation_request(body('{"n": 2, "prompt": "a fox"}'))
    other = parse_generation_request(body('{"n": 3, "prompt": "a fox"}'))
    assert fingerprint(first, "team-a") == fingerprint(same, "team-a")
    assert fingerprint(first, "team-a") != fingerprint(other, "team-a")
    assert fingerprint(first, "team-a") != fingerprint(first, "team-b")


async def test_the_first_request_owns_the_key_and_a_repeat_gets_its_answer(
    clock: FakeClock,
) -> None:
    idempotency = flow(clock)
    ticket = await idempotency.begin("k", "team-a", "fp", budget_seconds=60)
    assert isinstance(ticket, Ticket)
    await idempotency.finish(ticket, OK)
    assert await idempotency.begin("k", "team-a", "fp", budget_seconds=60) == OK


async def test_another_body_with_the_same_key_is_a_422(clock: FakeClock) -> None:
    idempotency = flow(clock)
    ticket = await idempotency.begin("k", "team-a", "fp", budget_seconds=60)
    assert isinstance(ticket, Ticket)
    await idempotency.finish(ticket, OK)
    with pytest.raises(IdempotencyKeyReused) as caught:
        await idempotency.begin("k", "team-a", "other", budget_seconds=60)
    assert (caught.value.status, caught.value.code) == (422, "idempotency_key_reused")
    assert caught.value.response_headers()["x-should-retry"] == "false"


async def test_a_running_request_is_waited_for_then_refused_with_retry_after(
    clock: FakeClock,
) -> None:
    idempotency = flow(clock, wait=3.0)
    await idempotency.begin("k", "team-a", "fp", budget_seconds=60)
    with pytest.raises(IdempotencyInProgress) as caught:
        await idempotency.begin("k", "team-a", "fp", budget_seconds=60)
    error = caught.value
    assert (error.status, error.code) == (409, "idempotency_in_progress")
    assert error.headers["retry-after"] == "5"
    assert error.response_headers()["x-should-retry"] == "true"


async def test_the_wait_never_outlasts_the_requests_own_budget(clock: FakeClock) -> None:
    sleeps = Sleeps(clock)
    idempotency = Idempotency(
        MemoryIdempotencyStore(),
        window_seconds=3600,
        wait_seconds=100.0,
        clock=clock,
        sleep=sleeps,
        monotonic=lambda: sleeps.total,
    )
    await idempotency.begin("k", "team-a", "fp", budget_seconds=60)
    with pytest.raises(IdempotencyInProgress):
        await idempotency.begin("k", "team-a", "fp", budget_seconds=4)
    assert sleeps.total <= 4


async def test_a_dead_requests_lease_runs_out(clock: FakeClock) -> None:
    idempotency = flow(clock)
    first = await idempotency.begin("k", "team-a", "fp", budget_seconds=60)
    assert isinstance(first, Ticket)
    clock.now += 60 + LEASE_MARGIN_SECONDS + 1
    second = await idempotency.begin("k", "team-a", "fp", budget_seconds=60)
    assert isinstance(second, Ticket)
    # The first finishing late does not overwrite the new owner's record.
    await idempotency.finish(first, OK)
    with pytest.raises(IdempotencyInProgress):
        await idempotency.begin("k", "team-a", "fp", budget_seconds=60)


async def test_answers_are_kept_for_the_window_only(clock: FakeClock) -> None:
    idempotency = flow(clock, window=600)
    ticket = await idempotency.begin("k", "team-a", "fp", budget_seconds=60)
    assert isinstance(ticket, Ticket)
    await idempotency.finish(ticket, OK)
    clock.now += 601
    assert isinstance(await idempotency.begin("k", "team-a", "fp", budget_seconds=60), Ticket)


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (UpstreamTimeout("maybe generated"), True),
        (UpstreamError("HTTP 500"), True),
        (UpstreamBadResponse("fewer images than promised"), True),
        (StorageUnavailable("images could not be stored"), True),
        (UpstreamUnreachable("never sent"), False),
        (UpstreamAuthFailed("our key"), False),
        (RateLimited("slow down"), False),
        (ContentPolicyViolation("refused"), False),
        (RuntimeError("a bug"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
async def test_only_failures_that_may_have_billed_are_kept(
    clock: FakeClock, error: BaseException, kept: bool
) -> None:
    assert keeps(error) is kept
    idempotency = flow(clock)
    ticket = await idempotency.begin("k", "team-a", "fp", budget_seconds=60)
    assert isinstance(ticket, Ticket)
    await idempotency.fail(ticket, error)
    again = await idempotency.begin("k", "team-a", "fp", budget_seconds=60)
    if kept:
        assert isinstance(again, StoredResponse)
        assert again.status == getattr(error, "status", None)
    else:
        assert isinstance(again, Ticket)


def test_a_kept_error_comes_back_as_the_same_answer() -> None:
    original = UpstreamTimeout("The upstream provider did not answer within 5 seconds.")
    replayed = replayed_error(stored_error(original))
    assert replayed.status == 504
    assert replayed.body() == original.body()
    assert replayed.response_headers() == {
        "x-should-retry": "false",
        "idempotent-replayed": "true",
    }


def test_a_kept_error_keeps_its_retry_advice() -> None:
    original = StateUnavailable("The key's counters could not be read.")
    replayed = replayed_error(stored_error(original))
    assert (replayed.status, replayed.code, replayed.should_retry) == (503, original.code, True)


def test_a_replay_is_rebuilt_from_data_not_from_a_class_path() -> None:
    # What an older record held for a class that has since moved: the replay does not care.
    stored = StoredResponse(
        409,
        json.dumps(
            {"error": {"message": "m", "type": "invalid_request_error", "param": "x", "code": "c"}}
        ).encode(),
        {},
    )
    replayed = replayed_error(stored)
    assert (replayed.status, replayed.error_type, replayed.code) == (
        409,
        "invalid_request_error",
        "c",
    )
    assert replayed.body()["error"]["param"] == "x"


async def test_memory_is_bounded_oldest_answers_first(clock: FakeClock) -> None:
    store = MemoryIdempotencyStore(max_bytes=250)
    idempotency = flow(clock, store)
    for key in ("a", "b", "c"):
        ticket = await idempotency.begin(key, "team-a", "fp", budget_seconds=60)
        assert isinstance(ticket, Ticket)
        await idempotency.finish(ticket, StoredResponse(200, b"x" * 100, {}))
    assert len(store) == 2
    assert isinstance(await idempotency.begin("a", "team-a", "fp", budget_seconds=60), Ticket)
    assert isinstance(
        await idempotency.begin("c", "team-a", "fp", budget_seconds=60), StoredResponse
    )
