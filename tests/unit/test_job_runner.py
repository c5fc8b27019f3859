"""The job state machine: at most one generation per job, whatever the deliveries do.

Runs the real runner against the in-memory store and a fake provider that counts its calls
(the DynamoDB store passes the same contract in tests/aws/test_job_store.py).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from imagegw.api.job_view import job_view
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import InvalidValue, JobConflict, RateLimited, UpstreamTimeout
from imagegw.generation.deadline import Deadline
from imagegw.generation.job_runner import Disposition, process_job, submit_job
from imagegw.providers.base import ImageRequest, ImageResult
from imagegw.providers.progress import report_progress
from imagegw.settings import Settings
from imagegw.state.auth import ALL_SCOPES, Principal
from imagegw.state.jobs.model import RUNNING, Job, Status
from imagegw.state.jobs.store import MemoryJobStore

from support.fakes import FakeClock, FakeProvider

OWNER = Principal(name="team-a", scopes=frozenset({ALL_SCOPES}), models=None)
REQUEST = json.dumps({"model": "gpt-image-1.5", "prompt": "a red bicycle"}).encode()

pytestmark = pytest.mark.anyio


def make_runtime(settings: Settings, clock: FakeClock, provider: FakeProvider) -> Runtime:
    return Runtime(
        settings,
        providers={"openai": provider},
        job_store=MemoryJobStore(),
        clock=clock,
    )


async def queued_job(runtime: Runtime) -> Job:
    # enqueue=False: the tests deliver the job themselves, as the queue would.
    return await submit_job(runtime, OWNER, REQUEST, enqueue=False)


async def test_a_job_runs_once_however_often_it_is_delivered(
    settings: Settings, clock: FakeClock
) -> None:
    provider = FakeProvider()
    runtime = make_runtime(settings, clock, provider)
    job = await queued_job(runtime)
    first = await process_job(runtime, job.id)
    second = await process_job(runtime, job.id, receive_count=2)
    assert first.disposition is Disposition.DONE
    assert second.disposition is Disposition.DONE
    assert len(provider.requests) == 1
    assert second.job is not None
    assert second.job.status == "succeeded"
    view = await job_view(
        second.job, runtime.image_store, base_url="https://gw.example", now=runtime.clock()
    )
    (item,) = view["result"]["data"]
    assert item["url"].startswith("https://gw.example/v1/images/files/")
    assert view["result"]["usage"] == {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}


async def test_two_deliveries_at_once_generate_once(settings: Settings, clock: FakeClock) -> None:
    provider = FakeProvider()
    runtime = make_runtime(settings, clock, provider)
    job = await queued_job(runtime)
    outcomes = await asyncio.gather(process_job(runtime, job.id), process_job(runtime, job.id))
    assert len(provider.requests) == 1
    # The loser sees a running job under a live lease and asks to be delivered again later.
    assert sorted(outcome.disposition.value for outcome in outcomes) == ["done", "retry"]


async def test_a_rate_limited_job_is_retried_and_fails_on_the_last_delivery(
    settings: Settings, clock: FakeClock
) -> None:
    limited = RateLimited("slow down", headers={"retry-after": "7"})
    provider = FakeProvider(error=limited)
    # One upstream attempt per delivery: the queue's redelivery is what is tested here (the
    # gateway's own retries within an attempt are in tests/unit/test_retry.py).
    runtime = make_runtime(
        settings.model_copy(update={"jobs_max_receive_count": 3, "upstream_max_attempts": 1}),
        clock,
        provider,
    )
    job = await queued_job(runtime)

    first = await process_job(runtime, job.id, receive_count=1)
    assert first.disposition is Disposition.RETRY
    assert first.retry_after == 7
    assert first.job is not None
    assert first.job.status == "queued"
    assert first.job.last_error is not None
    assert first.job.last_error["code"] == "rate_limit_exceeded"

    last = await process_job(runtime, job.id, receive_count=3)
    # Failed for good, and still reported as a failure so that the message reaches the DLQ.
    assert last.disposition is Disposition.RETRY
    assert last.job is not None
    assert last.job.status == "failed"
    assert last.job.error is not None
    assert last.job.error["code"] == "rate_limit_exceeded"
    assert len(provider.requests) == 2


async def test_a_timeout_may_have_been_billed_so_it_is_not_retried(
    settings: Settings, clock: FakeClock
) -> None:
    provider = FakeProvider(error=UpstreamTimeout("too slow"))
    runtime = make_runtime(settings, clock, provider)
    job = await queued_job(runtime)
    outcome = await process_job(runtime, job.id)
    assert outcome.disposition is Disposition.DONE
    assert outcome.job is not None
    assert outcome.job.status == "failed"
    assert outcome.job.error == UpstreamTimeout("too slow").body()["error"]
    again = await process_job(runtime, job.id, receive_count=2)
    assert again.disposition is Disposition.DONE
    assert len(provider.requests) == 1


async def test_a_job_held_under_a_live_lease_is_left_alone_and_an_expired_one_fails(
    settings: Settings, clock: FakeClock
) -> None:
    provider = FakeProvider()
    runtime = make_runtime(settings, clock, provider)
    job = await queued_job(runtime)
    store = runtime.job_store
    assert await store.transition(
        job.id,
        expect="queued",
        token=None,
        changes={"status": RUNNING, "lease_token": "other", "lease_until": clock.now + 100},
    )
    held = await process_job(runtime, job.id, receive_count=2)
    assert held.disposition is Disposition.RETRY
    assert held.retry_after is not None
    assert 0 < held.retry_after <= 101

    clock.now += 101
    interrupted = await process_job(runtime, job.id, receive_count=3)
    assert interrupted.disposition is Disposition.DONE
    assert interrupted.job is not None
    assert interrupted.job.status == "failed"
    assert interrupted.job.error is not None
    assert interrupted.job.error["code"] == "job_interrupted"
    # Another worker may have paid for the images already: never generated again here.
    assert provider.requests == []


async def test_a_bad_request_is_refused_when_submitted_not_later(
    settings: Settings, clock: FakeClock
) -> None:
    runtime = make_runtime(settings, clock, FakeProvider())
    bad = json.dumps({"model": "gpt-image-1.5", "prompt": "x", "size": "7x7"}).encode()
    with pytest.raises(InvalidValue):
        await submit_job(runtime, OWNER, bad, enqueue=False)


async def test_a_chosen_job_id_is_idempotent_for_the_same_request_only(
    settings: Settings, clock: FakeClock
) -> None:
    runtime = make_runtime(settings, clock, FakeProvider())
    first = await submit_job(runtime, OWNER, REQUEST, job_id="order-1", enqueue=False)
    again = await submit_job(runtime, OWNER, REQUEST, job_id="order-1", enqueue=False)
    assert again == first
    other = json.dumps({"model": "gpt-image-1.5", "prompt": "a blue bicycle"}).encode()
    with pytest.raises(JobConflict) as raised:
        await submit_job(runtime, OWNER, other, job_id="order-1", enqueue=False)
    assert raised.value.status == 409


async def test_the_worker_deadline_bounds_the_upstream_call(
    settings: Settings, clock: FakeClock
) -> None:
    provider = FakeProvider()
    runtime = make_runtime(settings, clock, provider)
    job = await queued_job(runtime)
    now = [1000.0]
    deadline = Deadline(at=1060.0, limit="worker", clock=lambda: now[0])
    await process_job(runtime, job.id, deadline=deadline)
    (request,) = provider.requests
    assert request.timeout_seconds == 60.0 - settings.response_margin_seconds


# ---------------------------------------------------------------- progress


class RecordingStore(MemoryJobStore):
    """The in-memory store, keeping every progress it was asked to write."""

    def __init__(self) -> None:
        super().__init__()
        self.progress: list[dict[str, object]] = []

    async def transition(
        self, job_id: str, *, expect: Status, token: str | None, changes: dict[str, object]
    ) -> bool:
        written = await super().transition(job_id, expect=expect, token=token, changes=changes)
        if written and "progress" in changes:
            self.progress.append(dict(changes["progress"]))  # type: ignore[call-overload]
        return written


class Reporting(FakeProvider):
    """Reports what a polling upstream would, then answers."""

    async def generate(self, request: ImageRequest) -> ImageResult:
        report_progress(stage="Pending", percent=40.0)
        report_progress(stage="Pending", percent=40.0)  # unchanged: not written again
        report_progress(images_done=request.n)
        return await super().generate(request)


async def test_progress_is_written_as_the_job_runs(settings: Settings, clock: FakeClock) -> None:
    store = RecordingStore()
    runtime = Runtime(settings, providers={"openai": Reporting()}, job_store=store, clock=clock)
    body = json.dumps({"model": "gpt-image-1.5", "prompt": "a red bicycle", "n": 2}).encode()
    job = await submit_job(runtime, OWNER, body, enqueue=False)
    assert job.progress == {"stage": "queued", "images": 2, "images_done": 0}
    processed = await process_job(runtime, job.id)
    stages = [(p["stage"], p.get("percent"), p["images_done"]) for p in store.progress]
    assert stages == [
        ("generating", None, 0),
        ("generating", 40.0, 0),
        ("generating", 40.0, 2),
        ("storing", 40.0, 2),
        ("succeeded", 40.0, 2),
    ]
    assert store.progress[1]["upstream_stage"] == "Pending"
    assert processed.job is not None
    view = await job_view(
        processed.job, runtime.image_store, base_url="https://gw.example", now=runtime.clock()
    )
    assert view["progress"]["stage"] == "succeeded"


async def test_a_streamed_job_keeps_links_to_its_partial_images(
    settings: Settings, clock: FakeClock
) -> None:
    runtime = Runtime(settings, job_store=MemoryJobStore(), clock=clock)
    body = json.dumps(
        {"model": "local/sketch", "prompt": "a fox", "stream": True, "partial_images": 2}
    ).encode()
    job = await submit_job(runtime, OWNER, body, enqueue=False)
    processed = await process_job(runtime, job.id)
    assert processed.job is not None
    assert processed.job.status == "succeeded"
    view = await job_view(
        processed.job, runtime.image_store, base_url="https://gw.example", now=runtime.clock()
    )
    partials = view["progress"]["partial_images"]
    assert [partial["index"] for partial in partials] == [0, 1]
    for partial in partials:
        assert partial["url"].startswith("https://gw.example/v1/images/files/")
        assert partial["expires_at"] > 0
    stored = processed.job.progress
    assert stored is not None
    # The record keeps keys; links are made when the job is read.
    assert all(set(partial) == {"index", "key"} for partial in stored["partial_images"])


async def test_a_failed_job_says_so_in_its_progress(settings: Settings, clock: FakeClock) -> None:
    runtime = make_runtime(settings, clock, FakeProvider(error=UpstreamTimeout("slow")))
    job = await queued_job(runtime)
    processed = await process_job(runtime, job.id)
    assert processed.job is not None
    assert processed.job.progress is not None
    assert processed.job.progress["stage"] == "failed"


async def test_changed_wakes_on_a_change_and_gives_up_unchanged() -> None:
    store = MemoryJobStore()
    job = Job(
        id="job_1",
        client="a",
        status="queued",
        request="{}",
        source="api",
        created_at=1,
        updated_at=1,
        expires_at=100,
    )
    await store.create(job)
    assert await store.changed(job.id, job, wait_seconds=0.01) == job
    # gather starts its tasks in order: the first runs until it waits for a change (the job is
    # as it saw it), and only then does the second change the job and wake it.
    changed, moved = await asyncio.gather(
        store.changed(job.id, job, wait_seconds=10),
        store.transition(job.id, expect="queued", token=None, changes={"updated_at": 2}),
    )
    assert moved
    assert changed is not None
    assert changed.updated_at == 2
