"""Jobs in a DynamoDB table (``IMAGEGW_JOBS_TABLE``).

The table (``JobsTable`` in template.yaml): partition key ``job_id`` (string), TTL attribute
``expires_at``; nothing else is needed (no index, no sort key). Each job is one item;
``result``, ``error`` and ``last_error`` are JSON text. Writes are conditional
(``attribute_not_exists(job_id)`` to create, the expected status and lease token to change), so
two workers holding the same message cannot both win.

boto3 is imported when the store is first used, and its blocking calls run in a thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from imagegw.errors import JobStoreUnavailable
from imagegw.state.jobs.model import Job, Status
from imagegw.state.jobs.store import JobStore, check_changes

_JSON_FIELDS = frozenset({"result", "error", "last_error", "reserved", "models", "progress"})
_NUMBER_FIELDS = frozenset({"created_at", "updated_at", "expires_at", "attempts", "lease_until"})


def _encode(name: str, value: Any) -> dict[str, str]:
    if name in _JSON_FIELDS:
        return {"S": json.dumps(value, ensure_ascii=False, separators=(",", ":"))}
    if name in _NUMBER_FIELDS:
        return {"N": repr(value) if isinstance(value, float) else str(int(value))}
    return {"S": str(value)}


def _decode(name: str, attribute: dict[str, str]) -> Any:
    if "N" in attribute:
        number = float(attribute["N"])
        return number if name == "lease_until" else int(number)
    text = attribute["S"]
    return json.loads(text) if name in _JSON_FIELDS else text


# The table's partition key; the record's other attributes are named as the Job's fields.
KEY = "job_id"


def _key(job_id: str) -> dict[str, dict[str, str]]:
    return {KEY: {"S": job_id}}


def to_item(job: Job) -> dict[str, dict[str, str]]:
    item = {
        name: _encode(name, value)
        for name, value in vars(job).items()
        if value is not None and name != "id"
    }
    return {**item, **_key(job.id)}


def from_item(item: dict[str, dict[str, str]]) -> Job:
    fields = {name: _decode(name, attribute) for name, attribute in item.items() if name != KEY}
    known = set(Job.__dataclass_fields__)
    return Job(id=item[KEY]["S"], **{k: v for k, v in fields.items() if k in known and k != "id"})


def default_client() -> Any:
    import boto3

    return boto3.client("dynamodb")


class DynamoDBJobStore(JobStore):
    def __init__(self, table: str, *, client_factory: Callable[[], Any] = default_client) -> None:
        self._table = table
        self._client_factory = client_factory
        self._client: Any = None

    def _dynamodb(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    async def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        def call() -> Any:
            return getattr(self._dynamodb(), operation)(TableName=self._table, **kwargs)

        try:
            return await asyncio.to_thread(call)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise JobStoreUnavailable("The gateway could not reach its job store.") from exc
        except BotoCoreError as exc:
            raise JobStoreUnavailable("The gateway could not reach its job store.") from exc

    async def create(self, job: Job) -> bool:
        answer = await self._call(
            "put_item", Item=to_item(job), ConditionExpression=f"attribute_not_exists({KEY})"
        )
        return answer is not None

    async def get(self, job_id: str) -> Job | None:
        answer = await self._call("get_item", Key=_key(job_id), ConsistentRead=True)
        item = answer.get("Item") if answer else None
        return from_item(item) if item else None

    async def transition(
        self, job_id: str, *, expect: Status, token: str | None, changes: dict[str, Any]
    ) -> bool:
        check_changes(changes)
        names = {"#status": "status"}
        values: dict[str, Any] = {":expect": {"S": expect}}
        sets: list[str] = []
        removes: list[str] = []
        for index, (name, value) in enumerate(sorted(changes.items())):
            names[f"#f{index}"] = name
            if value is None:
                removes.append(f"#f{index}")
            else:
                values[f":v{index}"] = _encode(name, value)
                sets.append(f"#f{index} = :v{index}")
        expression = " ".join(
            part
            for part in (
                f"SET {', '.join(sets)}" if sets else "",
                f"REMOVE {', '.join(removes)}" if removes else "",
            )
            if part
        )
        condition = "#status = :expect"
        if token is not None:
            names["#token"] = "lease_token"
            values[":token"] = {"S": token}
            condition += " AND #token = :token"
        answer = await self._call(
            "update_item",
            Key=_key(job_id),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        return answer is not None
