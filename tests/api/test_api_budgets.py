"""Spend budgets over HTTP: the maximum cost held before the upstream call, settled after."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import GENERATIONS, assert_error, bearer, client_for, write_key_file
from fastapi.testclient import TestClient

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import UpstreamTimeout
from imagegw.providers.base import GeneratedImage, ImageRequest, ImageResult
from imagegw.settings import Settings
from imagegw.state.auth import FileKeyStore
from imagegw.state.limits import MemoryCounterStore

from support.fakes import TINY_PNG, FakeClock, FakeProvider
from support.jobs import finished_job

BUDGETED = "sk-budget-000000000000000000000"
FREE = "sk-free-1111111111111111111111"
DAY = "spend#budgeted#day#2026-11-22"
MONTH = "spend#budgeted#month#2026-11"
PROMPT = "a lighthouse"
REQUEST = {"model": "gpt-image-2", "prompt": PROMPT, "quality": "high", "size": "1024x1024"}
# gpt-image-2 at high 1024x1024: $0.211 per image plus the prompt at $5 per 1M characters.
HOLD = 211_000 + len(PROMPT) * 5
USAGE = {
    "input_tokens": 50,
    "output_tokens": 4160,
    "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
}
COST = 125_170  # the usage at $5 / $8 / $30 per 1M tokens, in micro-dollars


class Provider(FakeProvider):
    """Delivers ``delivered`` images (None: n) with ``usage``; fails once when told to."""

    def __init__(self) -> None:
        super().__init__(result=self._answer)
        self.delivered: int | None = None
        self.usage: dict[str, Any] | None = USAGE
        self.fail_next = False

    def _answer(self, request: ImageRequest) -> ImageResult:
        count = request.n if self.delivered is None else self.delivered
        return ImageResult(
            images=[GeneratedImage(media_type="image/png", data=TINY_PNG) for _ in range(count)],
            size=request.size,
            quality=request.quality,
            usage=self.usage,
            filtered=request.n - count,
        )

    async def generate(self, request: ImageRequest) -> ImageResult:
        if self.fail_next:
            self.fail_next = False
            self.requests.append(request)
            raise UpstreamTimeout("The upstream provider did not answer in time.")
        return await super().generate(request)


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
def counters(clock: FakeClock) -> MemoryCounterStore:
    return MemoryCounterStore(clock)


@pytest.fixture
def runtime(
    settings: Settings,
    clock: FakeClock,
    provider: Provider,
    counters: MemoryCounterStore,
    tmp_path: Path,
) -> Runtime:
    keys = write_key_file(
        tmp_path / "keys.json",
        [
            {"name": "budgeted", "key": BUDGETED, "scopes": ["*"], "daily_budget_usd": 0.5},
            {"name": "free", "key": FREE, "scopes": ["*"]},
        ],
    )
    from imagegw.generation.reliability import Reliability

    reliability = Reliability(settings, clock=clock, counters=counters)
    return Runtime(
        settings,
        key_store=FileKeyStore(keys),
        providers={"openai": provider, "google": provider},
        reliability=reliability,
        clock=clock,
    )


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with client_for(runtime) as client:
        yield client


def generate(client: TestClient, key: str = BUDGETED, **changes: object) -> httpx.Response:
    return client.post(GENERATIONS, json={**REQUEST, **changes}, headers=bearer(key))


def test_a_budgeted_key_is_charged_what_its_images_cost(
    client: TestClient, counters: MemoryCounterStore
) -> None:
    response = generate(client)
    assert response.status_code == 200, response.text
    assert response.headers["x-imagegw-cost-usd"] == "0.125170"
    assert counters.value(DAY) == COST


def test_over_the_budget_is_a_402_that_says_when_it_renews(
    client: TestClient, provider: Provider, counters: MemoryCounterStore
) -> None:
    for _ in range(3):
        assert generate(client).status_code == 200
    # $0.37551 spent of $0.50: the next request may cost up to $0.21106.
    refused = generate(client)
    message = assert_error(
        refused, 402, code="insufficient_balance", error_type="billing_error", retry=False
    )
    assert "daily spend budget of $0.50" in message
    assert "renews at 2026-11-23T00:00:00Z" in message
    assert refused.headers["x-imagegw-budget-renews-at"] == "2026-11-23T00:00:00Z"
    assert len(provider.requests) == 3  # refused before the upstream
    assert counters.value(DAY) == 3 * COST
    # A cheaper request still fits.
    assert generate(client, quality="low").status_code == 200


def test_a_failed_generation_releases_the_hold(
    client: TestClient, provider: Provider, counters: MemoryCounterStore
) -> None:
    provider.fail_next = True
    assert_error(generate(client), 504, code="upstream_timeout")
    assert counters.value(DAY) == 0


def test_a_partial_delivery_is_charged_for_what_arrived(
    client: TestClient, provider: Provider, counters: MemoryCounterStore
) -> None:
    provider.delivered = 1
    provider.usage = None
    request = {"model": "google/gemini-3-pro-image", "n": 2, "size": "2048x2048"}
    response = client.post(
        GENERATIONS, json={"prompt": PROMPT, **request}, headers=bearer(BUDGETED)
    )
    assert response.status_code == 200, response.text
    assert response.json()["images_filtered"] == 1
    assert counters.value(DAY) == 134_000  # one 2K image, not the two held


def test_an_idempotent_replay_is_not_charged_twice(
    client: TestClient, provider: Provider, counters: MemoryCounterStore
) -> None:
    headers = {**bearer(BUDGETED), "Idempotency-Key": "order-7"}
    answers = [client.post(GENERATIONS, json=REQUEST, headers=headers) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert len(provider.requests) == 1
    assert counters.value(DAY) == COST


def test_a_budgeted_key_cannot_use_a_model_without_a_known_price(
    client: TestClient, provider: Provider
) -> None:
    refused = generate(client, model="gpt-image-2.6-flare", quality=None, size=None)
    message = assert_error(refused, 403, code="model_not_priced", param="model")
    assert "gpt-image-2.6-flare" in message
    assert provider.requests == []
    # A key without a budget may: the answer says the cost is unknown.
    allowed = generate(client, FREE, model="gpt-image-2.6-flare", quality=None, size=None)
    assert allowed.status_code == 200
    assert allowed.headers["x-imagegw-cost-usd"] == "unknown"


def test_keys_without_a_budget_touch_no_spend_counter(
    client: TestClient, counters: MemoryCounterStore
) -> None:
    for _ in range(5):
        assert generate(client, FREE).status_code == 200
    assert counters.value("spend#free#day#2026-11-22") == 0


# ---------------------------------------------------------------- async jobs


def finished(client: TestClient, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return finished_job(client, response.headers["location"], bearer(BUDGETED))


def submit(client: TestClient) -> httpx.Response:
    headers = {**bearer(BUDGETED), "Prefer": "respond-async"}
    return client.post(GENERATIONS, json={**REQUEST, "response_format": "url"}, headers=headers)


def test_a_job_holds_at_submission_and_settles_when_it_ends(
    client: TestClient, counters: MemoryCounterStore
) -> None:
    view = finished(client, submit(client))
    assert view["status"] == "succeeded"
    assert view["result"]["cost"]["amount"] == COST / 1_000_000
    assert counters.value(DAY) == COST


def test_a_failed_job_releases_its_hold(
    client: TestClient, provider: Provider, counters: MemoryCounterStore
) -> None:
    provider.fail_next = True
    assert finished(client, submit(client))["status"] == "failed"
    assert counters.value(DAY) == 0


def test_a_job_over_the_budget_is_refused_at_submission(
    client: TestClient, counters: MemoryCounterStore
) -> None:
    for _ in range(3):
        assert generate(client).status_code == 200
    assert_error(submit(client), 402, code="insufficient_balance", error_type="billing_error")


# ---------------------------------------------------------------- racing for the last dollar


class Gate(Provider):
    """Holds every call until ``opened``, so the requests overlap; ``arrival`` is called first."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = 0
        self.opened = asyncio.Event()
        self.arrival = lambda: None

    async def generate(self, request: ImageRequest) -> ImageResult:
        self.arrived += 1
        self.arrival()
        await self.opened.wait()
        return await super().generate(request)


@pytest.mark.anyio
async def test_racing_requests_never_spend_past_the_budget(
    settings: Settings, clock: FakeClock, tmp_path: Path
) -> None:
    from imagegw.generation.reliability import Reliability

    keys = write_key_file(
        tmp_path / "keys.json",
        [{"name": "budgeted", "key": BUDGETED, "scopes": ["*"], "daily_budget_usd": "1"}],
    )
    counters = MemoryCounterStore(clock)
    gate = Gate()
    runtime = Runtime(
        settings,
        key_store=FileKeyStore(keys),
        providers={"openai": gate},
        reliability=Reliability(settings, clock=clock, counters=counters),
        clock=clock,
    )
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        refused = 0
        # Set once every request either holds (waiting at the gate) or was refused.
        all_in = asyncio.Event()

        def count(task: object = None) -> None:
            nonlocal refused
            refused += task is not None
            if gate.arrived + refused == 30:
                all_in.set()

        gate.arrival = count
        racing = [
            asyncio.create_task(client.post(GENERATIONS, json=REQUEST, headers=bearer(BUDGETED)))
            for _ in range(30)
        ]
        for task in racing:
            task.add_done_callback(count)
        await all_in.wait()
        held = counters.value(DAY)
        assert held == gate.arrived * HOLD
        assert held <= 1_000_000
        gate.opened.set()
        answers = await asyncio.gather(*racing)
    statuses = sorted(answer.status_code for answer in answers)
    # $1.00 holds four requests of up to $0.21106 each; the other 26 were refused at once.
    assert statuses == [200] * 4 + [402] * 26
    assert counters.value(DAY) == 4 * COST


def test_a_402_frees_its_idempotency_key_for_when_the_budget_allows(
    client: TestClient, provider: Provider, tmp_path: Path
) -> None:
    for _ in range(3):
        assert generate(client).status_code == 200
    headers = {**bearer(BUDGETED), "Idempotency-Key": "after-payday"}
    refused = client.post(GENERATIONS, json=REQUEST, headers=headers)
    assert_error(refused, 402, code="insufficient_balance", error_type="billing_error")
    # Nothing was billed, so the key is not kept: with a larger budget the same request runs.
    write_key_file(
        tmp_path / "keys.json",
        [{"name": "budgeted", "key": BUDGETED, "scopes": ["*"], "daily_budget_usd": 5}],
    )
    again = client.post(GENERATIONS, json=REQUEST, headers=headers)
    assert again.status_code == 200, again.text
    assert len(provider.requests) == 4
