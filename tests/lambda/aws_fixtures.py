"""moto-backed AWS for the Lambda layer: the jobs table and queue the template creates.

Loaded with ``pytest_plugins = ["lambda_fixtures", "aws_fixtures"]``. Clients are created inside
the mock (the gateway creates its own lazily, on first use, so they are mocked too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_harness import QUEUE, REGION, TABLE, JobsAws
from moto import mock_aws


@pytest.fixture
def jobs_aws(
    monkeypatch: pytest.MonkeyPatch, cold_handler: Callable[[Any, Any], Any]
) -> Iterator[JobsAws]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        monkeypatch.setenv("IMAGEGW_JOBS_TABLE", TABLE)
        monkeypatch.setenv("IMAGEGW_JOBS_QUEUE_URL", queue_url)
        yield JobsAws(dynamodb, sqs, queue_url)
