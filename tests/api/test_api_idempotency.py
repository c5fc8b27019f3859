"""Idempotency-Key over HTTP: replays without a second upstream call, conflicts, scoping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import GENERATIONS, assert_error, bearer, client_for, write_key_file
from fastapi.testclient import TestClient

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import GatewayError, RateLimited, UpstreamTimeout
from imagegw.generation.reliability import Reliability
from imagegw.providers.base import ImageRequest, ImageResult
from imagegw.settings import Settings
from imagegw.state.auth import FileKeyStore
from imagegw.state.idempotency import MemoryIdempotencyStore, Record

from conftest import AUTH
from support.fakes import FakeClock, FakeProvider

REQUEST = {"model": "openai/gpt-image-1.5", "prompt": "a lighthouse", "n": 2}
KEY_A = "sk-team-a-000000000000000000"
KEY_B = "sk-team-b-111111111111111111"


def with_key(key: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers or AUTH), "Idempotency-Key": key}


def test_a_repeat_gets_the_first_answer_without_a_second_upstream_call(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    first = client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
    again = client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["x-imagegw-model"] == first.headers["x-imagegw-model"]
    assert len(fake_provider.requests) == 1


def test_the_same_body_written_differently_is_the_same_request(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
    reordered = json.dumps(
        {"n": 2, "size": None, "prompt": "a lighthouse", "model": REQUEST["model"]}
    )
    again = client.post(
        GENERATIONS,
        content=reordered,
        headers={**with_key("job-1"), "Content-Type": "application/json"},
    )
    assert again.status_code == 200
    assert len(fake_provider.requests) == 1


def test_the_same_key_with_another_body_is_a_422(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
    response = client.post(
        GENERATIONS, json={**REQUEST, "prompt": "a harbour"}, headers=with_key("job-1")
    )
    message = assert_error(response, 422, code="idempotency_key_reused", param="Idempotency-Key")
    assert "different request" in message
    assert len(fake_provider.requests) == 1


def test_requests_without_a_key_always_run(client: TestClient, fake_provider: FakeProvider) -> None:
    client.post(GENERATIONS, json=REQUEST, headers=AUTH)
    client.post(GENERATIONS, json=REQUEST, headers=AUTH)
    assert len(fake_provider.requests) == 2


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\tinside"])
def test_an_unusable_key_is_a_400(
    client: TestClient, fake_provider: FakeProvider, value: str
) -> None:
    response = client.post(GENERATIONS, json=REQUEST, headers=with_key(value))
    assert_error(response, 400, code="invalid_value", param="Idempotency-Key")
    assert fake_provider.requests == []


@pytest.fixture
def two_clients(
    settings: Settings, clock: FakeClock, fake_provider: FakeProvider, tmp_path: Path
) -> Iterator[TestClient]:
    keys = write_key_file(
        tmp_path / "keys.json",
        [
            {"name": "team-a", "key": KEY_A, "scopes": ["*"]},
            {"name": "team-b", "key": KEY_B, "scopes": ["*"]},
        ],
    )
    runtime = Runtime(
        settings,
        key_store=FileKeyStore(keys),
        providers={"openai": fake_provider},
        clock=clock,
    )
    with client_for(runtime) as client:
        yield client


def test_two_clients_never_see_each_others_answers(
    two_clients: TestClient, fake_provider: FakeProvider
) -> None:
    a = two_clients.post(GENERATIONS, json=REQUEST, headers=with_key("same", bearer(KEY_A)))
    b = two_clients.post(GENERATIONS, json=REQUEST, headers=with_key("same", bearer(KEY_B)))
    assert a.status_code == b.status_code == 200
    assert "idempotent-replayed" not in b.headers
    assert len(fake_provider.requests) == 2
    # Not even a conflict when B's body differs: B's key space is its own.
    other = two_clients.post(
        GENERATIONS, json={**REQUEST, "n": 1}, headers=with_key("other", bearer(KEY_B))
    )
    assert other.status_code == 200


class Failing(FakeProvider):
    def __init__(self, error: GatewayError) -> None:
        super().__init__(error=error)


def _client(settings: Settings, clock: FakeClock, provider: FakeProvider) -> TestClient:
    single = settings.model_copy(update={"upstream_max_attempts": 1})
    return TestClient(
        create_app(runtime=Runtime(single, providers={"openai": provider}, clock=clock))
    )


def test_a_failure_that_may_have_billed_is_replayed_not_rerun(
    settings: Settings, clock: FakeClock
) -> None:
    provider = Failing(UpstreamTimeout("The upstream provider did not answer within 300 seconds."))
    with _client(settings, clock, provider) as client:
        first = client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
        again = client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
    assert_error(first, 504, code="upstream_timeout")
    assert_error(again, 504, code="upstream_timeout")
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(provider.requests) == 1


def test_a_failure_that_billed_nothing_frees_the_key(settings: Settings, clock: FakeClock) -> None:
    provider = Failing(RateLimited("Slow down.", headers={"retry-after": "1"}))
    with _client(settings, clock, provider) as client:
        first = client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
        again = client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
    assert_error(first, 429, code="rate_limit_exceeded", error_type="rate_limit_error", retry=True)
    assert "idempotent-replayed" not in again.headers
    assert len(provider.requests) == 2


class Slow(FakeProvider):
    """Holds each generation until released, so a second request arrives while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def generate(self, request: ImageRequest) -> ImageResult:
        self.started.set()
        await self.release.wait()
        return await super().generate(request)


class Watched(MemoryIdempotencyStore):
    """Says when a claim finds the key held by a request that is still running."""

    def __init__(self) -> None:
        super().__init__()
        self.found_running = asyncio.Event()

    async def claim(self, record_id: str, record: Record, *, now: float) -> Record | None:
        existing = await super().claim(record_id, record, now=now)
        if existing is not None and existing.state == "running":
            self.found_running.set()
        return existing


@pytest.mark.anyio
async def test_a_repeat_while_the_first_runs_waits_for_its_answer(
    settings: Settings, clock: FakeClock
) -> None:
    provider = Slow()
    store = Watched()
    reliability = Reliability(settings, clock=clock, idempotency_store=store)
    runtime = Runtime(
        settings, providers={"openai": provider}, reliability=reliability, clock=clock
    )
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        first = asyncio.create_task(
            client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
        )
        await provider.started.wait()
        second = asyncio.create_task(
            client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
        )
        await store.found_running.wait()  # the second found the first running: it polls now
        assert not second.done()
        provider.release.set()
        one, two = await asyncio.gather(first, second)
    assert one.status_code == two.status_code == 200
    assert two.content == one.content
    assert two.headers["idempotent-replayed"] == "true"
    assert len(provider.requests) == 1


@pytest.mark.anyio
async def test_a_repeat_that_cannot_wait_longer_is_a_409_with_retry_after(
    settings: Settings, clock: FakeClock
) -> None:
    provider = Slow()
    impatient = settings.model_copy(update={"idempotency_wait_seconds": 0.0})
    app = create_app(runtime=Runtime(impatient, providers={"openai": provider}, clock=clock))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        first = asyncio.create_task(
            client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
        )
        await provider.started.wait()
        second = await client.post(GENERATIONS, json=REQUEST, headers=with_key("job-1"))
        provider.release.set()
        assert (await first).status_code == 200
    assert_error(second, 409, code="idempotency_in_progress", param="Idempotency-Key", retry=True)
    assert second.headers["retry-after"] == "5"
    assert len(provider.requests) == 1


def test_replayed_links_are_signed_afresh_and_work(
    client: TestClient, fake_provider: FakeProvider, clock: FakeClock
) -> None:
    request = {**REQUEST, "response_format": "url"}
    first = client.post(GENERATIONS, json=request, headers=with_key("job-1")).json()
    clock.now += 1800
    again = client.post(GENERATIONS, json=request, headers=with_key("job-1")).json()
    assert len(fake_provider.requests) == 1
    assert [item["expires_at"] for item in again["data"]] == [
        item["expires_at"] + 1800 for item in first["data"]
    ]
    for old, new in zip(first["data"], again["data"], strict=True):
        assert old["url"].split("?")[0] == new["url"].split("?")[0]  # the same stored image
        assert old["url"] != new["url"]
        fetched = client.get(new["url"])
        assert fetched.status_code == 200
        assert fetched.headers["content-type"] == "image/png"
