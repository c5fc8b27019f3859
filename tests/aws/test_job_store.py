"""The job store contract, for the in-memory store and the DynamoDB store (moto, real boto3)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from imagegw.state.jobs.dynamodb import DynamoDBJobStore
from imagegw.state.jobs.model import Job
from imagegw.state.jobs.store import JobStore, MemoryJobStore

REGION = "us-east-1"
TABLE = "imagegw-jobs-test"

JOB = Job(
    id="job_0123",
    client="team-a",
    status="queued",
    request='{"prompt": "a red bicycle"}',
    source="api",
    created_at=1_795_000_000,
    updated_at=1_795_000_000,
    expires_at=1_795_086_400,
)


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobStore]:
    if request.param == "memory":
        yield MemoryJobStore()
        return
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoDBJobStore(TABLE)


def test_create_refuses_an_existing_id(store: JobStore) -> None:
    async def scenario() -> tuple[bool, bool, Job | None]:
        first = await store.create(JOB)
        second = await store.create(JOB)
        return first, second, await store.get(JOB.id)

    first, second, stored = asyncio.run(scenario())
    assert (first, second) == (True, False)
    assert stored == JOB


def test_transition_holds_only_for_the_expected_status_and_lease(store: JobStore) -> None:
    async def scenario() -> list[object]:
        await store.create(JOB)
        claimed = await store.transition(
            JOB.id,
            expect="queued",
            token=None,
            changes={"status": "running", "lease_token": "t1", "lease_until": 1.5e9, "attempts": 1},
        )
        claimed_again = await store.transition(
            JOB.id, expect="queued", token=None, changes={"status": "running"}
        )
        wrong_lease = await store.transition(
            JOB.id, expect="running", token="t2", changes={"status": "failed"}
        )
        finished = await store.transition(
            JOB.id,
            expect="running",
            token="t1",
            changes={
                "status": "succeeded",
                "result": {"images": [{"key": "ab.png"}], "response": {"created": 1}},
                "lease_token": None,
                "lease_until": None,
            },
        )
        missing = await store.transition(
            "job_missing", expect="queued", token=None, changes={"status": "running"}
        )
        return [claimed, claimed_again, wrong_lease, finished, missing, await store.get(JOB.id)]

    claimed, claimed_again, wrong_lease, finished, missing, job = asyncio.run(scenario())
    assert (claimed, claimed_again, wrong_lease, finished, missing) == (
        True,
        False,
        False,
        True,
        False,
    )
    assert isinstance(job, Job)
    assert job.status == "succeeded"
    assert job.attempts == 1
    assert job.lease_token is None
    assert job.lease_until is None
    assert job.result == {"images": [{"key": "ab.png"}], "response": {"created": 1}}


def test_unknown_fields_cannot_be_changed(store: JobStore) -> None:
    with pytest.raises(ValueError, match="cannot change"):
        asyncio.run(store.transition(JOB.id, expect="queued", token=None, changes={"client": "b"}))


def test_the_store_uses_the_key_of_the_table_the_template_creates() -> None:
    from pathlib import Path

    from cfnlint.decode import decode_str

    from imagegw.state.jobs.dynamodb import KEY

    template_path = Path(__file__).resolve().parents[2] / "template.yaml"
    template, problems = decode_str(template_path.read_text(encoding="utf-8"))
    assert problems == []
    table = template["Resources"]["JobsTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": KEY, "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
