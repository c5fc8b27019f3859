"""Spend budgets and the usage ledger in DynamoDB (moto), the same contract as in memory.

Real boto3 calls against moto's DynamoDB; the table is shaped as the template creates it
(partition key ``pk``, TTL attribute ``expires_at``). Every test runs against both stores.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
from api.api_support import GENERATIONS, assert_error, bearer, client_for
from moto import mock_aws

from imagegw.catalog.prices import Cost
from imagegw.cli.keys import main as keys_main
from imagegw.cli.usage_report import usage_report
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import BudgetExceeded
from imagegw.settings import Settings
from imagegw.state.auth import Principal, hash_key
from imagegw.state.budgets import Budgets
from imagegw.state.dynamodb import DynamoDBCounterStore
from imagegw.state.limits import CounterStore, MemoryCounterStore
from imagegw.state.usage import MemoryUsageLedger, Totals, UsageEntry, UsageLedger
from imagegw.state.usage_dynamodb import DynamoDBUsageLedger

from support.fakes import NOW, FakeClock, FakeProvider

pytestmark = pytest.mark.anyio

TABLE = "imagegw-state"
REGION = "us-east-1"
DAY = dt.date(2026, 11, 22)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


def dynamodb() -> Any:
    return boto3.client("dynamodb", region_name=REGION)


@pytest.fixture(params=["memory", "dynamodb"])
def counters(request: pytest.FixtureRequest) -> CounterStore:
    if request.param == "memory":
        return MemoryCounterStore(FakeClock())
    request.getfixturevalue("aws")
    return DynamoDBCounterStore(TABLE, client=dynamodb)


@pytest.fixture(params=["memory", "dynamodb"])
def ledger(request: pytest.FixtureRequest) -> UsageLedger:
    if request.param == "memory":
        return MemoryUsageLedger()
    request.getfixturevalue("aws")
    return DynamoDBUsageLedger(TABLE, client=dynamodb, retention_days=400, clock=FakeClock())


def key(name: str = "team-a", daily: int | None = 1_000_000) -> Principal:
    return Principal(name=name, scopes=frozenset({"*"}), models=None, daily_budget_micros=daily)


# ---------------------------------------------------------------- budgets


async def test_holds_settles_and_refusals(counters: CounterStore) -> None:
    budgets = Budgets(counters, FakeClock())
    first = await budgets.hold(key(), 600_000)
    assert first is not None
    with pytest.raises(BudgetExceeded):
        await budgets.hold(key(), 600_000)
    await budgets.settle(first, 150_000)
    second = await budgets.hold(key(), 600_000)
    assert second is not None
    with pytest.raises(BudgetExceeded):
        await budgets.hold(key(), 250_001)
    await budgets.release(second)
    assert await budgets.hold(key(), 850_000) is not None
    with pytest.raises(BudgetExceeded):
        await budgets.hold(key(), 1)


async def test_one_key_spending_does_not_touch_another(counters: CounterStore) -> None:
    budgets = Budgets(counters, FakeClock())
    assert await budgets.hold(key("team-a"), 1_000_000) is not None
    assert await budgets.hold(key("team-b"), 1_000_000) is not None


async def test_the_counter_item_is_an_atomic_number_with_an_expiry(aws: None) -> None:
    budgets = Budgets(DynamoDBCounterStore(TABLE, client=dynamodb), FakeClock())
    hold = await budgets.hold(key(), 422_000)
    assert hold is not None
    await budgets.settle(hold, 125_170)
    item = dynamodb().get_item(TableName=TABLE, Key={"pk": {"S": "spend#team-a#day#2026-11-22"}})
    assert item["Item"]["used"] == {"N": "125170"}
    # Kept a day past the end of the day it counts.
    midnight = dt.datetime(2026, 11, 23, tzinfo=dt.UTC).timestamp()
    assert int(item["Item"]["expires_at"]["N"]) == int(midnight) + 86_400


# ---------------------------------------------------------------- the usage ledger


async def test_entries_add_up_per_key_model_and_day(ledger: UsageLedger) -> None:
    priced = Cost(Decimal("0.125170"), estimated=False)
    await ledger.record(
        key="team-a", model="openai/gpt-image-2", day=DAY, totals=Totals.of(2, priced)
    )
    await ledger.record(
        key="team-a", model="openai/gpt-image-2", day=DAY, totals=Totals.of(1, priced)
    )
    estimated = Cost(Decimal("0.24"), estimated=True)
    await ledger.record(
        key="team-a", model="google/gemini-3-pro-image", day=DAY, totals=Totals.of(1, estimated)
    )
    await ledger.record(key="team-b", model="bfl/flux-2-pro", day=DAY, totals=Totals.of(3, None))
    tomorrow = DAY + dt.timedelta(days=1)
    await ledger.record(
        key="team-a", model="openai/gpt-image-2", day=tomorrow, totals=Totals.of(1, priced)
    )

    entries = await ledger.entries(keys=None, start=DAY, end=tomorrow)
    assert entries == [
        UsageEntry("team-a", DAY, "google/gemini-3-pro-image", Totals(1, 1, 240_000, 1, 0)),
        UsageEntry("team-a", DAY, "openai/gpt-image-2", Totals(2, 3, 250_340, 0, 0)),
        UsageEntry("team-a", tomorrow, "openai/gpt-image-2", Totals(1, 1, 125_170, 0, 0)),
        UsageEntry("team-b", DAY, "bfl/flux-2-pro", Totals(1, 3, 0, 0, 3)),
    ]
    own = await ledger.entries(keys=["team-b"], start=DAY, end=DAY)
    assert own == [UsageEntry("team-b", DAY, "bfl/flux-2-pro", Totals(1, 3, 0, 0, 3))]
    assert await ledger.entries(keys=["team-a"], start=tomorrow, end=tomorrow) == [
        UsageEntry("team-a", tomorrow, "openai/gpt-image-2", Totals(1, 1, 125_170, 0, 0))
    ]
    assert await ledger.entries(keys=["nobody"], start=DAY, end=tomorrow) == []


async def test_a_long_range_reads_in_batches(ledger: UsageLedger) -> None:
    start = dt.date(2026, 1, 1)
    for offset in (0, 150, 364):
        day = start + dt.timedelta(days=offset)
        await ledger.record(key="team-a", model="local/sketch", day=day, totals=Totals.of(1, None))
    entries = await ledger.entries(keys=None, start=start, end=dt.date(2026, 12, 31))
    assert [entry.day for entry in entries] == [
        dt.date(2026, 1, 1),
        dt.date(2026, 5, 31),
        dt.date(2026, 12, 31),
    ]


async def test_ledger_items_expire_after_the_retention(aws: None) -> None:
    ledger = DynamoDBUsageLedger(TABLE, client=dynamodb, retention_days=30, clock=FakeClock())
    await ledger.record(key="team-a", model="local/sketch", day=DAY, totals=Totals.of(1, None))
    item = dynamodb().get_item(TableName=TABLE, Key={"pk": {"S": "usage#team-a#2026-11-22"}})
    assert int(item["Item"]["expires_at"]["N"]) == int(NOW) + 30 * 86_400
    assert item["Item"]["key_name"] == {"S": "team-a"}


async def test_the_operators_report_reads_the_table(aws: None) -> None:
    ledger = DynamoDBUsageLedger(TABLE, client=dynamodb, retention_days=400, clock=FakeClock())
    priced = Cost(Decimal("0.2"), estimated=True)
    await ledger.record(key="team-a", model="bfl/flux-2-pro", day=DAY, totals=Totals.of(2, priced))
    await ledger.record(key="gone", model="local/sketch", day=DAY, totals=Totals.of(1, None))
    # Off the main thread: the report runs its own event loop, as the command does.
    text = await anyio.to_thread.run_sync(
        lambda: usage_report(
            table=TABLE, start="2026-11-01", end="2026-11-30", group_by="key", dynamodb=dynamodb()
        )
    )
    assert text.splitlines() == [
        "usage 2026-11-01 to 2026-11-30 (UTC), by key",
        "key     requests  images  cost_usd  estimated  unpriced_images",
        "gone    1         1       0.000000  no         1",
        "team-a  1         2       0.200000  yes        0",
        "total   2         3       0.200000  yes        1",
    ]


def test_the_keys_command_prints_the_report(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGEGW_IDEMPOTENCY_TABLE", TABLE)
    assert keys_main(["usage", "--start", "2026-11-22", "--end", "2026-11-22", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"data": []' in out
    assert keys_main(["usage", "--start", "someday"]) == 2
    assert "Invalid value for 'start'" in capsys.readouterr().err


# ---------------------------------------------------------------- over HTTP, state in DynamoDB


def test_budgets_and_usage_hold_across_instances_sharing_the_table(
    aws: None, tmp_path: Path
) -> None:
    """Two gateway instances (two runtimes) on one table: the budget is one budget."""
    key = "sk-shared-budget-000000000000000"
    keys = tmp_path / "keys.json"
    entry = {"name": "team-a", "sha256": hash_key(key), "scopes": ["*"], "daily_budget_usd": 0.5}
    keys.write_text(json.dumps({"keys": [entry]}), encoding="utf-8")
    settings = Settings(
        api_keys_file=keys,
        idempotency_table=TABLE,
        local_storage_dir=tmp_path / "images",
        url_signing_secret="test-signing-secret",
    )
    request = {"model": "gpt-image-2", "prompt": "a kite", "quality": "high", "size": "1024x1024"}
    first = Runtime(settings, providers={"openai": FakeProvider()}, clock=FakeClock())
    second = Runtime(settings, providers={"openai": FakeProvider()}, clock=FakeClock())
    statuses = []
    with client_for(first) as one, client_for(second) as two:
        # Each request holds up to $0.211 and spends $0.00065 (the fake's usage).
        for client in (one, two, one, two):
            statuses.append(client.post(GENERATIONS, json=request, headers=bearer(key)).status_code)
        report = two.get("/v1/usage", params={"group_by": "model"}, headers=bearer(key)).json()
    assert statuses == [200, 200, 200, 200]
    assert report["data"][0]["model"] == "openai/gpt-image-2"
    assert report["total"]["requests"] == 4
    assert report["total"]["cost"]["amount"] == pytest.approx(4 * 0.00065)
    spent = dynamodb().get_item(TableName=TABLE, Key={"pk": {"S": "spend#team-a#day#2026-11-22"}})
    assert spent["Item"]["used"] == {"N": str(4 * 650)}


def test_a_402_when_the_shared_budget_is_spent(aws: None, tmp_path: Path) -> None:
    key = "sk-shared-budget-111111111111111"
    keys = tmp_path / "keys.json"
    entry = {"name": "team-b", "sha256": hash_key(key), "scopes": ["*"], "daily_budget_usd": 0.3}
    keys.write_text(json.dumps({"keys": [entry]}), encoding="utf-8")
    settings = Settings(
        api_keys_file=keys, idempotency_table=TABLE, local_storage_dir=tmp_path / "images"
    )
    request = {"model": "gpt-image-2", "prompt": "a kite", "quality": "high", "size": "1024x1024"}
    runtime = Runtime(settings, providers={"openai": FakeProvider()}, clock=FakeClock())
    with client_for(runtime) as client:
        # An earlier instance's settled spend, already in the table.
        dynamodb().update_item(
            TableName=TABLE,
            Key={"pk": {"S": "spend#team-b#day#2026-11-22"}},
            UpdateExpression="ADD used :spent",
            ExpressionAttributeValues={":spent": {"N": "150000"}},
        )
        refused = client.post(GENERATIONS, json=request, headers=bearer(key))
    assert_error(refused, 402, code="insufficient_balance", error_type="billing_error")
