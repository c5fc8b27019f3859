"""Idempotency records and key counters in DynamoDB (moto), the same contract as in memory.

Every test runs against both stores: what the gateway promises locally it keeps across Lambda
instances. Real boto3 calls against moto's DynamoDB and S3; the table is shaped as the template
creates it (partition key ``pk``, TTL attribute ``expires_at``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imagegw.errors import StateUnavailable
from imagegw.state.dynamodb import (
    INLINE_BODY_BYTES,
    DynamoDBCounterStore,
    DynamoDBIdempotencyStore,
    S3Blobs,
)
from imagegw.state.idempotency import (
    IdempotencyStore,
    MemoryIdempotencyStore,
    Record,
    StoredResponse,
)
from imagegw.state.limits import CounterStore, MemoryCounterStore

from support.fakes import NOW, FakeClock

pytestmark = pytest.mark.anyio

TABLE = "imagegw-state"
BUCKET = "imagegw-images"
REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(
            TableName=TABLE,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield


def dynamodb() -> Any:
    return boto3.client("dynamodb", region_name=REGION)


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


@pytest.fixture(params=["memory", "dynamodb"])
def records(request: pytest.FixtureRequest) -> IdempotencyStore:
    if request.param == "memory":
        return MemoryIdempotencyStore()
    request.getfixturevalue("aws")
    return DynamoDBIdempotencyStore(
        TABLE, client=dynamodb, blobs=S3Blobs(bucket=BUCKET, prefix="idempotency/", client=s3)
    )


@pytest.fixture(params=["memory", "dynamodb"])
def counters(request: pytest.FixtureRequest) -> CounterStore:
    if request.param == "memory":
        return MemoryCounterStore(FakeClock())
    request.getfixturevalue("aws")
    return DynamoDBCounterStore(TABLE, client=dynamodb)


def running(owner: str = "owner-1", fingerprint: str = "fp", lease: float = 60) -> Record:
    return Record(
        fingerprint=fingerprint,
        state="running",
        owner=owner,
        lease_until=NOW + lease,
        expires_at=NOW + 3600,
    )


def done(record: Record, response: StoredResponse) -> Record:
    return Record(
        fingerprint=record.fingerprint,
        state="done",
        owner=record.owner,
        lease_until=record.lease_until,
        expires_at=record.expires_at,
        response=response,
    )


ANSWER = StoredResponse(
    200,
    b'{"data": [{"url": "https://x/1.png"}]}',
    {"x-imagegw-model": "local/sketch"},
    links=("0123456789abcdef0123456789abcdef.png",),
)


async def test_one_claim_wins(records: IdempotencyStore) -> None:
    first = running("owner-1")
    assert await records.claim("r1", first, now=NOW) is None
    existing = await records.claim("r1", running("owner-2"), now=NOW)
    assert existing is not None
    assert (existing.owner, existing.state) == ("owner-1", "running")


async def test_concurrent_claims_have_exactly_one_winner() -> None:
    # In memory only: moto does not serialize threads the way DynamoDB serializes writes to an
    # item, so on AWS the guarantee is the conditional write, checked one call at a time below.
    records = MemoryIdempotencyStore()
    outcomes = await asyncio.gather(
        *(records.claim("r1", running(f"owner-{i}"), now=NOW) for i in range(8))
    )
    assert sum(outcome is None for outcome in outcomes) == 1


async def test_separate_instances_share_records_and_counters(aws: None) -> None:
    # Two Lambda instances: separate store objects, separate boto3 clients, one table.
    first = DynamoDBIdempotencyStore(TABLE, client=dynamodb)
    second = DynamoDBIdempotencyStore(TABLE, client=dynamodb)
    assert await first.claim("r1", running("owner-1"), now=NOW) is None
    existing = await second.claim("r1", running("owner-2"), now=NOW)
    assert existing is not None
    assert existing.owner == "owner-1"
    one, two = (DynamoDBCounterStore(TABLE, client=dynamodb) for _ in range(2))
    expires = int(NOW) + 120
    assert await one.try_add("limit#a#rate#1", 3, limit=4, expires_at=expires)
    assert not await two.try_add("limit#a#rate#1", 2, limit=4, expires_at=expires)
    assert await two.try_add("limit#a#rate#1", 1, limit=4, expires_at=expires)


async def test_a_finished_record_replays_its_answer(records: IdempotencyStore) -> None:
    mine = running()
    await records.claim("r1", mine, now=NOW)
    await records.complete("r1", done(mine, ANSWER))
    existing = await records.claim("r1", running("owner-2"), now=NOW + 1)
    assert existing is not None
    assert existing.state == "done"
    assert existing.response == ANSWER


async def test_a_kept_error_replays_with_its_retry_advice(records: IdempotencyStore) -> None:
    error = StoredResponse(503, b'{"error": {}}', {}, should_retry=True)
    mine = running()
    await records.claim("r1", mine, now=NOW)
    await records.complete("r1", done(mine, error))
    existing = await records.claim("r1", running("owner-2"), now=NOW)
    assert existing is not None
    assert existing.response == error


async def test_answers_larger_than_an_item_are_kept_whole(records: IdempotencyStore) -> None:
    big = StoredResponse(200, b'{"data": "' + b"A" * (2 * INLINE_BODY_BYTES) + b'"}', {})
    mine = running()
    await records.claim("r1", mine, now=NOW)
    await records.complete("r1", done(mine, big))
    existing = await records.claim("r1", running("owner-2"), now=NOW)
    assert existing is not None
    assert existing.response == big


async def test_a_lease_that_ran_out_can_be_taken_over(records: IdempotencyStore) -> None:
    await records.claim("r1", running("owner-1", lease=10), now=NOW)
    assert await records.claim("r1", running("owner-2"), now=NOW + 11) is None
    # The first owner finishing late changes nothing.
    await records.complete("r1", done(running("owner-1"), ANSWER))
    existing = await records.claim("r1", running("owner-3"), now=NOW + 12)
    assert existing is not None
    assert (existing.owner, existing.state) == ("owner-2", "running")


async def test_an_expired_record_is_gone_even_if_ttl_has_not_deleted_it(
    records: IdempotencyStore,
) -> None:
    mine = running()
    await records.claim("r1", mine, now=NOW)
    await records.complete("r1", done(mine, ANSWER))
    assert await records.claim("r1", running("owner-2"), now=NOW + 3601) is None


async def test_release_frees_the_key_for_its_owner_only(records: IdempotencyStore) -> None:
    await records.claim("r1", running("owner-1"), now=NOW)
    await records.release("r1", owner="someone-else")
    assert await records.claim("r1", running("owner-2"), now=NOW) is not None
    await records.release("r1", owner="owner-1")
    assert await records.claim("r1", running("owner-2"), now=NOW) is None


async def test_records_are_separate(records: IdempotencyStore) -> None:
    assert await records.claim("r1", running(), now=NOW) is None
    assert await records.claim("r2", running(), now=NOW) is None


async def test_counters_stop_at_their_limit(counters: CounterStore) -> None:
    expires = int(NOW) + 120
    assert await counters.try_add("limit#a#rate#1", 3, limit=5, expires_at=expires)
    assert await counters.try_add("limit#a#rate#1", 2, limit=5, expires_at=expires)
    assert not await counters.try_add("limit#a#rate#1", 1, limit=5, expires_at=expires)
    await counters.add("limit#a#rate#1", -2)
    assert await counters.try_add("limit#a#rate#1", 2, limit=5, expires_at=expires)
    assert not await counters.try_add("limit#a#rate#1", 1, limit=5, expires_at=expires)


async def test_concurrent_reservations_never_pass_the_limit() -> None:
    counters = MemoryCounterStore(FakeClock())  # in memory only, as above
    expires = int(NOW) + 120
    granted = await asyncio.gather(
        *(counters.try_add("limit#a#rate#1", 1, limit=10, expires_at=expires) for _ in range(25))
    )
    assert sum(granted) == 10


async def test_counter_items_expire_by_ttl(aws: None) -> None:
    store = DynamoDBCounterStore(TABLE, client=dynamodb)
    await store.try_add("limit#a#quota#2026-11-22", 4, limit=10, expires_at=1_800_000_000)
    item = dynamodb().get_item(TableName=TABLE, Key={"pk": {"S": "limit#a#quota#2026-11-22"}})
    assert item["Item"]["used"] == {"N": "4"}
    assert item["Item"]["expires_at"] == {"N": "1800000000"}


async def test_an_unreachable_table_is_a_retryable_503(aws: None) -> None:
    store = DynamoDBCounterStore("no-such-table", client=dynamodb)
    with pytest.raises(StateUnavailable) as caught:
        await store.try_add("limit#a#rate#1", 1, limit=5, expires_at=int(NOW))
    assert caught.value.status == 503
    assert caught.value.response_headers()["x-should-retry"] == "true"
    assert "no-such-table" not in caught.value.message


async def test_without_a_bucket_a_large_answer_is_marked_lost_not_half_kept(aws: None) -> None:
    store = DynamoDBIdempotencyStore(TABLE, client=dynamodb)
    big = StoredResponse(200, b"A" * (INLINE_BODY_BYTES + 1), {})
    mine = running()
    await store.claim("r1", mine, now=NOW)
    await store.complete("r1", done(mine, big))
    existing = await store.claim("r1", running("owner-2"), now=NOW)
    assert existing is not None
    assert existing.state == "done"
    assert existing.response is None
    assert existing.response_lost
