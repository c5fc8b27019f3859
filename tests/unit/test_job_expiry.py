"""Jobs never outlive their images: retention tied to the bucket's, and expired reads say so.

The runner against the in-memory job store and the local image store (whose files the tests
delete, as the bucket's lifecycle rule deletes objects); the S3 store's existence check is in
tests/api/test_api_s3_delivery.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from imagegw.api.job_view import job_view
from imagegw.entrypoints.runtime import Runtime
from imagegw.generation.job_runner import process_job, submit_job
from imagegw.settings import Settings
from imagegw.state.auth import ALL_SCOPES, Principal
from imagegw.state.jobs.model import Job
from imagegw.state.jobs.store import MemoryJobStore

from support.fakes import FakeClock, FakeProvider

OWNER = Principal(name="team-a", scopes=frozenset({ALL_SCOPES}), models=None)
REQUEST = json.dumps({"model": "gpt-image-1.5", "prompt": "a red bicycle", "n": 2}).encode()
DAY = 86_400

pytestmark = pytest.mark.anyio


def with_retention(settings: Settings, **values: object) -> Settings:
    return Settings(**{**settings.model_dump(), **values})


async def finished_job(settings: Settings, clock: FakeClock) -> tuple[Runtime, Job]:
    runtime = Runtime(
        settings, providers={"openai": FakeProvider()}, job_store=MemoryJobStore(), clock=clock
    )
    job = await submit_job(runtime, OWNER, REQUEST, enqueue=False)
    processed = await process_job(runtime, job.id)
    assert processed.job is not None
    assert processed.job.status == "succeeded"
    return runtime, processed.job


@pytest.mark.parametrize(("days", "expected"), [(None, DAY), (1, DAY), (7, 7 * DAY)])
async def test_a_job_lives_exactly_as_long_as_its_images(
    settings: Settings, clock: FakeClock, days: int | None, expected: int
) -> None:
    _, job = await finished_job(with_retention(settings, image_retention_days=days), clock)
    assert job.expires_at - job.created_at == expected


def test_a_job_retention_longer_than_the_images_is_refused(settings: Settings) -> None:
    with pytest.raises(ValidationError, match="outlive their images"):
        with_retention(settings, image_retention_days=1, jobs_retention_seconds=DAY + 1)
    shorter = with_retention(settings, image_retention_days=2, jobs_retention_seconds=DAY)
    assert shorter.job_retention_seconds == DAY


def test_the_retention_comes_from_the_stacks_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IMAGEGW_JOBS_RETENTION_SECONDS", raising=False)
    monkeypatch.setenv("IMAGEGW_IMAGE_RETENTION_DAYS", "3")
    assert Settings().job_retention_seconds == 3 * DAY


async def test_a_live_job_links_its_images(settings: Settings, clock: FakeClock) -> None:
    runtime, job = await finished_job(settings, clock)
    view = await job_view(job, runtime.image_store, base_url="https://gw.example", now=clock())
    assert view["status"] == "succeeded"
    assert view["expires_at"] == job.expires_at
    assert len(view["result"]["data"]) == 2
    assert "error" not in view


async def test_a_job_read_after_its_retention_is_expired_without_links(
    settings: Settings, clock: FakeClock
) -> None:
    runtime, job = await finished_job(settings, clock)
    # DynamoDB deletes expired items up to two days late: the read itself says expired.
    view = await job_view(
        job, runtime.image_store, base_url="https://gw.example", now=job.expires_at
    )
    assert view["status"] == "expired"
    assert "result" not in view
    assert view["error"]["code"] == "job_expired"
    assert "Submit the request again" in view["error"]["message"]


async def test_a_job_whose_images_are_gone_is_expired_not_dead_links(
    settings: Settings, clock: FakeClock
) -> None:
    runtime, job = await finished_job(settings, clock)
    assert job.result is not None
    directory = settings.local_storage_dir
    assert isinstance(directory, Path)
    # One of the two images deleted (a lifecycle rule, a hand deletion): no partial links.
    (directory / job.result["images"][1]["key"]).unlink()
    view = await job_view(job, runtime.image_store, base_url="https://gw.example", now=clock())
    assert view["status"] == "expired"
    assert "result" not in view
    assert view["error"]["code"] == "job_expired"
    assert "no longer stored" in view["error"]["message"]
