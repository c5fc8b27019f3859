"""Helpers for the jobs table and queue in moto (the fixture is in aws_fixtures.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REGION = "us-east-1"
TABLE = "imagegw-jobs-test"
QUEUE = "imagegw-jobs-test"


@dataclass
class JobsAws:
    dynamodb: Any
    sqs: Any
    queue_url: str

    def item(self, job_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.dynamodb.get_item(
            TableName=TABLE, Key={"job_id": {"S": job_id}}
        ).get("Item")
        return found

    def receive(self) -> list[dict[str, Any]]:
        """Messages now visible, as the SQS event source would put them in a batch."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            VisibilityTimeout=0,
        )
        return [sqs_record(message) for message in answer.get("Messages", [])]

    def deliver(self, handler: Callable[[Any, Any], Any], context: Any) -> dict[str, Any]:
        """What the SQS event source does: one batch of what is visible, then delete what the
        function did not report as failed."""
        records = self.receive()
        result: dict[str, Any] = handler({"Records": records}, context)
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        for record in records:
            if record["messageId"] not in failed:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"]
                )
        return result


def sqs_record(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{QUEUE}",
        "awsRegion": REGION,
    }


def decoded(value: dict[str, str]) -> Any:
    return json.loads(value["S"])
