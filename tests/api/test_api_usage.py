"""``GET /v1/usage`` and the operators' report: what keys spent, from the usage ledger."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import GENERATIONS, assert_error, bearer, client_for, write_key_file
from fastapi.testclient import TestClient

from imagegw.cli.usage_report import usage_report
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import StateUnavailable
from imagegw.generation import reliability as reliability_module
from imagegw.generation.reliability import Reliability
from imagegw.providers.base import GeneratedImage, ImageRequest, ImageResult
from imagegw.settings import Settings
from imagegw.state.auth import FileKeyStore
from imagegw.state.usage import MemoryUsageLedger, Totals

from conftest import AUTH
from support.fakes import TINY_PNG, FakeClock, FakeProvider
from support.jobs import finished_job

TEAM_A = "sk-team-a-0000000000000000000000"
TEAM_B = "sk-team-b-1111111111111111111111"
ADMIN = "sk-admin-22222222222222222222222"
USAGE = {"input_tokens": 10, "output_tokens": 1000}  # $0.00005 + $0.03 on gpt-image-2
COST = 0.03005


def answer(request: ImageRequest) -> ImageResult:
    images = [GeneratedImage(media_type="image/png", data=TINY_PNG) for _ in range(request.n)]
    return ImageResult(images=images, usage=USAGE)


@pytest.fixture
def client(settings: Settings, clock: FakeClock, tmp_path: Path) -> Iterator[TestClient]:
    keys = write_key_file(
        tmp_path / "keys.json",
        [
            {"name": "team-a", "key": TEAM_A, "scopes": ["images:generate"]},
            {"name": "team-b", "key": TEAM_B, "scopes": ["images:generate"]},
            {"name": "admin", "key": ADMIN, "scopes": ["usage:all"]},
        ],
    )
    provider = FakeProvider(result=answer)
    runtime = Runtime(
        settings,
        key_store=FileKeyStore(keys),
        providers={"openai": provider},
        clock=clock,
    )
    with client_for(runtime) as client:
        yield client


def generate(client: TestClient, key: str, model: str, n: int = 1) -> None:
    body = {"model": model, "prompt": "a kite", "n": n}
    response = client.post(GENERATIONS, json=body, headers=bearer(key))
    assert response.status_code == 200, response.text


def usage(client: TestClient, api_key: str, **params: str) -> dict[str, Any]:
    response = client.get("/v1/usage", params=params, headers=bearer(api_key))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    document: dict[str, Any] = response.json()
    return document


def row(requests: int, images: int, amount: float, *, unpriced: int = 0) -> dict[str, Any]:
    return {
        "requests": requests,
        "images": images,
        "cost": {"amount": pytest.approx(amount), "currency": "USD", "estimated": False},
        "estimated_requests": 0,
        "unpriced_images": unpriced,
    }


def test_a_key_reads_its_own_usage_by_model(client: TestClient) -> None:
    generate(client, TEAM_A, "gpt-image-2", n=2)
    generate(client, TEAM_A, "gpt-image-2")
    generate(client, TEAM_A, "local/sketch", n=3)
    generate(client, TEAM_B, "gpt-image-2")
    document = usage(client, TEAM_A, group_by="model")
    assert document["object"] == "usage"
    assert (document["start"], document["end"]) == ("2026-11-01", "2026-11-22")
    assert document["keys"] == ["team-a"]
    assert document["data"] == [
        {"model": "local/sketch", **row(1, 3, 0.0)},
        {"model": "openai/gpt-image-2", **row(2, 3, 2 * COST)},
    ]
    assert document["total"] == row(3, 6, 2 * COST)


def test_an_admin_key_sees_every_key_and_can_pick_one(client: TestClient) -> None:
    generate(client, TEAM_A, "gpt-image-2")
    generate(client, TEAM_B, "gpt-image-2", n=2)
    everyone = usage(client, ADMIN, group_by="key")
    assert everyone["keys"] == "all"
    assert everyone["data"] == [
        {"key": "team-a", **row(1, 1, COST)},
        {"key": "team-b", **row(1, 2, COST)},
    ]
    one = usage(client, ADMIN, group_by="key", key="team-b")
    assert one["data"] == [{"key": "team-b", **row(1, 2, COST)}]


def test_usage_by_day_over_a_chosen_period(client: TestClient, clock: FakeClock) -> None:
    generate(client, TEAM_A, "gpt-image-2")
    clock.now += 86_400
    generate(client, TEAM_A, "gpt-image-2")
    generate(client, TEAM_A, "gpt-image-2")
    document = usage(client, TEAM_A, start="2026-11-20", end="2026-11-23")
    assert document["group_by"] == "day"
    assert document["data"] == [
        {"day": "2026-11-22", **row(1, 1, COST)},
        {"day": "2026-11-23", **row(2, 2, 2 * COST)},
    ]
    only_first = usage(client, TEAM_A, start="2026-11-22", end="2026-11-22")
    assert only_first["total"] == row(1, 1, COST)
    # Unix seconds name the UTC day they fall in.
    seconds = usage(client, TEAM_A, start=str(int(clock.now)), end=str(int(clock.now)))
    assert seconds["total"] == row(2, 2, 2 * COST)


def test_unpriced_images_are_counted_apart(client: TestClient) -> None:
    generate(client, TEAM_A, "gpt-image-2.6-flare", n=2)
    document = usage(client, TEAM_A, group_by="model")
    assert document["data"] == [
        {"model": "openai/gpt-image-2.6-flare", **row(1, 2, 0.0, unpriced=2)}
    ]


def test_replays_and_failures_are_not_usage(client: TestClient) -> None:
    headers = {**bearer(TEAM_A), "Idempotency-Key": "once"}
    for _ in range(3):
        body = {"model": "gpt-image-2", "prompt": "a kite"}
        assert client.post(GENERATIONS, json=body, headers=headers).status_code == 200
    bad = client.post(
        GENERATIONS, json={"model": "gpt-image-2", "prompt": "x", "n": 99}, headers=bearer(TEAM_A)
    )
    assert bad.status_code == 400
    assert usage(client, TEAM_A)["total"] == row(1, 1, COST)


def test_jobs_are_usage_too(client: TestClient) -> None:
    headers = {**bearer(TEAM_A), "Prefer": "respond-async"}
    body = {"model": "gpt-image-2", "prompt": "a kite", "response_format": "url"}
    location = client.post(GENERATIONS, json=body, headers=headers).headers["location"]
    assert finished_job(client, location, bearer(TEAM_A))["status"] == "succeeded"
    assert usage(client, TEAM_A)["total"] == row(1, 1, COST)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"group_by": "colour"}, "group_by"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-13-01"}, "end"),
        ({"start": "2026-11-22", "end": "2026-11-01"}, "start"),
        ({"start": "2025-01-01", "end": "2026-11-22"}, "start"),
    ],
)
def test_a_bad_report_request_is_a_400_naming_the_parameter(
    client: TestClient, params: dict[str, str], param: str
) -> None:
    response = client.get("/v1/usage", params=params, headers=bearer(TEAM_A))
    assert_error(response, 400, code="invalid_value", param=param)


def test_only_an_admin_key_reads_other_keys(client: TestClient) -> None:
    refused = client.get("/v1/usage", params={"key": "team-b"}, headers=bearer(TEAM_A))
    assert_error(refused, 403, code="insufficient_scope", param="key")
    assert usage(client, TEAM_A, key="team-a")["keys"] == ["team-a"]
    assert_error(client.get("/v1/usage"), 401, code="missing_api_key")


def test_the_operators_report_reads_a_running_gateway(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(client, TEAM_A, "gpt-image-2", n=2)
    generate(client, TEAM_B, "local/sketch")
    monkeypatch.setenv("IMAGEGW_API_KEY", ADMIN)
    text = usage_report(url="http://testserver", group_by="model", http=client)
    assert text.splitlines() == [
        "usage 2026-11-01 to 2026-11-22 (UTC), by model",
        "model               requests  images  cost_usd  estimated  unpriced_images",
        "local/sketch        1         1       0.000000  no         0",
        "openai/gpt-image-2  1         2       0.030050  no         0",
        "total               2         3       0.030050  no         0",
    ]
    monkeypatch.setenv("IMAGEGW_API_KEY", TEAM_B)
    own = usage_report(url="http://testserver", group_by="key", http=client, as_json=True)
    assert '"team-b"' in own
    assert '"team-a"' not in own
    monkeypatch.setenv("IMAGEGW_API_KEY", TEAM_A)
    with pytest.raises(ValueError, match="403"):
        usage_report(url="http://testserver", keys=["team-b"], http=client)


class BrokenLedger(MemoryUsageLedger):
    """A ledger whose table is down (``fail``) or hangs (``hang``)."""

    def __init__(self, *, hang: bool) -> None:
        super().__init__()
        self.hang = hang
        self.never = asyncio.Event()

    async def record(self, *, key: str, model: str, day: dt.date, totals: Totals) -> None:
        if self.hang:
            await self.never.wait()
        raise StateUnavailable("The table is down.")


@pytest.mark.parametrize("hang", [False, True])
def test_a_ledger_that_fails_or_hangs_never_holds_the_answer_back(
    settings: Settings,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    hang: bool,
) -> None:
    monkeypatch.setattr(reliability_module, "USAGE_RECORD_SECONDS", 0.05)
    reliability = Reliability(settings, clock=clock, usage=BrokenLedger(hang=hang))
    runtime = Runtime(
        settings,
        providers={"openai": FakeProvider(result=answer)},
        reliability=reliability,
        clock=clock,
    )
    with client_for(runtime) as client:
        body = {"model": "gpt-image-2", "prompt": "a kite"}
        response = client.post(GENERATIONS, json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    (record,) = [r for r in caplog.records if r.getMessage() == "could not record usage"]
    assert record.__dict__["error"] == ("TimeoutError" if hang else "StateUnavailable")
    assert record.__dict__["cost_micros"] == 30_050
