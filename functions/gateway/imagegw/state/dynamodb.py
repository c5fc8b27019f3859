"""DynamoDB behind the idempotency and key-limit interfaces, so they hold across Lambda instances.

One table (``IMAGEGW_IDEMPOTENCY_TABLE``): partition key ``pk`` (string), TTL attribute
``expires_at`` (unix seconds). Items:

- ``idem#<sha256 of key name and Idempotency-Key>``: ``fingerprint``, ``state`` (running | done),
  ``owner`` (a random token of the request that runs it), ``lease_until``, ``expires_at``, and once
  done the answer: ``status``, ``headers`` (JSON), ``should_retry``, ``links`` (storage keys to
  re-sign), and ``body`` (bytes) inline when it is small. Answers over ``INLINE_BODY_BYTES``
  (base64 images: megabytes, far over DynamoDB's 400 KB item limit) go to S3 as
  ``<IMAGEGW_IDEMPOTENCY_S3_PREFIX><pk>.json`` in ``IMAGEGW_S3_BUCKET`` (``body_ref``). Without a
  bucket such an answer is not kept, and a repeat gets a 422 saying so instead of a second bill.
- ``limit#<key name>#rate#<minute>`` and ``limit#<key name>#quota#<date>``: ``used`` images.

Every write that decides something is conditional: a claim succeeds only when no live record
exists; completing or releasing only by the owner; a counter grows only while it stays within
its limit (``ADD`` under a ``ConditionExpression``). Expiry is checked in the conditions, since
DynamoDB's TTL deletes items up to days late. boto3 is imported on first use; calls run in a
thread. Any failure other than a failed condition is ``503 state_unavailable``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from imagegw.errors import StateUnavailable
from imagegw.state.idempotency import IdempotencyStore, Record, StoredResponse
from imagegw.state.limits import CounterStore

# DynamoDB items hold at most 400 KB, names and other attributes included.
INLINE_BODY_BYTES = 300_000
_CLAIM_CONDITION = (
    "attribute_not_exists(pk) OR expires_at <= :now OR (#state = :running AND lease_until <= :now)"
)
# A counter re-created by a late refund (after its TTL deletion) still disappears eventually.
_ORPHAN_COUNTER_SECONDS = 2 * 86_400
T = TypeVar("T")
_COUNT = "ADD used :amount SET expires_at = if_not_exists(expires_at, :exp)"


def dynamodb_client() -> Any:
    from botocore.config import Config

    from imagegw.aws import clients as aws_clients

    # Fail fast: a request waits on every call, and before the upstream call a 503 is harmless.
    config = Config(
        connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}
    )
    return aws_clients.client("dynamodb", config=config)


def _condition_failed(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code == "ConditionalCheckFailedException"


class _Table:
    def __init__(self, table: str, client: Callable[[], Any]) -> None:
        self.table = table
        self._factory = client
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client


class S3Blobs:
    """Answers too large for an item, as private objects (SSE) in the gateway's bucket."""

    def __init__(
        self, *, bucket: str, prefix: str, client: Callable[[], Any] | None = None
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._factory = client
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:
            if self._factory is None:
                from imagegw.storage.s3 import s3_client

                self._factory = s3_client
            self._client = self._factory()
        return self._client

    def put(self, name: str, data: bytes) -> str:
        key = f"{self._prefix}{name}.json"
        self._s3().put_object(
            Bucket=self._bucket,
            Key=key,
            Body=data,
            ContentType="application/json",
            ServerSideEncryption="AES256",
        )
        return key

    def get(self, key: str) -> bytes:
        body: bytes = self._s3().get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return body


class DynamoDBIdempotencyStore(IdempotencyStore):
    def __init__(
        self, table: str, *, client: Callable[[], Any], blobs: S3Blobs | None = None
    ) -> None:
        self._table = _Table(table, client)
        self._blobs = blobs

    async def claim(self, record_id: str, record: Record, *, now: float) -> Record | None:
        return await _in_thread(self._claim, record_id, record, now)

    async def complete(self, record_id: str, record: Record) -> None:
        await _in_thread(self._complete, record_id, record)

    async def release(self, record_id: str, *, owner: str) -> None:
        await _in_thread(self._release, record_id, owner)

    def _claim(self, record_id: str, record: Record, now: float) -> Record | None:
        pk = f"idem#{record_id}"
        for _ in range(3):
            try:
                self._table.client.put_item(
                    TableName=self._table.table,
                    Item={"pk": {"S": pk}, **_running_item(record)},
                    ConditionExpression=_CLAIM_CONDITION,
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={":now": _n(now), ":running": {"S": "running"}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except Exception as exc:
                if not _condition_failed(exc):
                    raise
                item = getattr(exc, "response", {}).get("Item") or self._get(pk)
                if item is None:
                    continue  # deleted in between (released): claim again
                return self._record(item, record.fingerprint)
            return None
        raise RuntimeError("the idempotency record kept changing while it was claimed")

    def _get(self, pk: str) -> dict[str, Any] | None:
        answer = self._table.client.get_item(
            TableName=self._table.table, Key={"pk": {"S": pk}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def _record(self, item: dict[str, Any], wanted_fingerprint: str) -> Record:
        state = item["state"]["S"]
        response: StoredResponse | None = None
        lost = bool(item.get("response_lost", {}).get("BOOL", False))
        # The answer is only read when it will be replayed (same request, finished).
        if state == "done" and item["fingerprint"]["S"] == wanted_fingerprint and not lost:
            if "body_ref" in item:
                assert self._blobs is not None, "an answer in S3 needs IMAGEGW_S3_BUCKET"
                content = self._blobs.get(item["body_ref"]["S"])
            else:
                content = item["body"]["B"]
            response = StoredResponse(
                status=int(item["status"]["N"]),
                content=content,
                headers=json.loads(item["headers"]["S"]),
                should_retry=bool(item.get("should_retry", {}).get("BOOL", False)),
                links=tuple(json.loads(item.get("links", {}).get("S", "[]"))),
            )
        return Record(
            fingerprint=item["fingerprint"]["S"],
            state="done" if state == "done" else "running",
            owner=item["owner"]["S"],
            lease_until=float(item["lease_until"]["N"]),
            expires_at=float(item["expires_at"]["N"]),
            response=response,
            response_lost=lost,
        )

    def _complete(self, record_id: str, record: Record) -> None:
        pk = f"idem#{record_id}"
        item: dict[str, Any] = {"pk": {"S": pk}, **_running_item(record), "state": {"S": "done"}}
        response = record.response
        if response is not None:
            item.update(
                status=_n(response.status),
                headers={"S": json.dumps(response.headers)},
                links={"S": json.dumps(list(response.links))},
            )
            if response.is_error:
                item["should_retry"] = {"BOOL": response.should_retry}
            if len(response.content) <= INLINE_BODY_BYTES:
                item["body"] = {"B": response.content}
            elif self._blobs is not None:
                item["body_ref"] = {"S": self._blobs.put(pk, response.content)}
            else:
                item["response_lost"] = {"BOOL": True}
        try:
            self._table.client.put_item(
                TableName=self._table.table,
                Item=item,
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": record.owner}},
            )
        except Exception as exc:
            if not _condition_failed(exc):
                raise
            # The lease ran out and another request owns the key now: its answer stands.

    def _release(self, record_id: str, owner: str) -> None:
        try:
            self._table.client.delete_item(
                TableName=self._table.table,
                Key={"pk": {"S": f"idem#{record_id}"}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except Exception as exc:
            if not _condition_failed(exc):
                raise


class DynamoDBCounterStore(CounterStore):
    def __init__(self, table: str, *, client: Callable[[], Any]) -> None:
        self._table = _Table(table, client)

    async def try_add(self, counter: str, amount: int, *, limit: int, expires_at: int) -> bool:
        return await _in_thread(self._try_add, counter, amount, limit, expires_at)

    async def add(self, counter: str, amount: int) -> None:
        await _in_thread(self._add, counter, amount)

    def _try_add(self, counter: str, amount: int, limit: int, expires_at: int) -> bool:
        try:
            self._table.client.update_item(
                TableName=self._table.table,
                Key={"pk": {"S": counter}},
                UpdateExpression=_COUNT,
                ConditionExpression="attribute_not_exists(used) OR used <= :room",
                ExpressionAttributeValues={
                    ":amount": _n(amount),
                    ":exp": _n(expires_at),
                    ":room": _n(limit - amount),
                },
            )
        except Exception as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def _add(self, counter: str, amount: int) -> None:
        self._table.client.update_item(
            TableName=self._table.table,
            Key={"pk": {"S": counter}},
            UpdateExpression=_COUNT,
            ExpressionAttributeValues={
                ":amount": _n(amount),
                ":exp": _n(int(time.time()) + _ORPHAN_COUNTER_SECONDS),
            },
        )


def _running_item(record: Record) -> dict[str, Any]:
    return {
        "fingerprint": {"S": record.fingerprint},
        "state": {"S": record.state},
        "owner": {"S": record.owner},
        "lease_until": _n(record.lease_until),
        "expires_at": _n(int(record.expires_at)),
    }


def _n(value: float) -> dict[str, str]:
    return {"N": str(int(value)) if float(value).is_integer() else repr(float(value))}


async def _in_thread(function: Callable[..., T], *args: Any) -> T:
    try:
        return await asyncio.to_thread(function, *args)
    except Exception as exc:
        # botocore's errors share no narrower useful base; the text may name the table only.
        raise StateUnavailable(
            "The gateway cannot reach its idempotency and limits store right now; nothing was "
            "generated. Retry shortly."
        ) from exc
