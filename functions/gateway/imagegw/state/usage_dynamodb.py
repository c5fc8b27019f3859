"""The usage ledger in DynamoDB (the state table, ``IMAGEGW_IDEMPOTENCY_TABLE``).

Items:

- ``usage#<key name>#<YYYY-MM-DD>``: one per key and UTC day. Per model, numeric attributes
  ``requests|<model>``, ``images|<model>``, ``micros|<model>``, ``estimated|<model>`` and
  ``unpriced|<model>``, each grown by an atomic ``ADD`` (no read, no race); ``key_name`` and
  ``day`` say whose it is; ``expires_at`` keeps it ``IMAGEGW_USAGE_RETENTION_DAYS``.
- ``usage-day#<YYYY-MM-DD>``: the string set ``keys`` of the key names with usage that day, so
  an admin report finds revoked keys too. Written once per key and day per process.

A report reads the items of its days with ``BatchGetItem`` (100 per call): no scan, no index.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from imagegw.state.dynamodb import _in_thread, _n, _Table
from imagegw.state.usage import Totals, UsageEntry, UsageLedger, days

_FIELDS = ("requests", "images", "micros", "estimated", "unpriced")
_BATCH = 100


def _values(totals: Totals) -> tuple[int, ...]:
    return (
        totals.requests,
        totals.images,
        totals.cost_micros,
        totals.estimated_requests,
        totals.unpriced_images,
    )


class DynamoDBUsageLedger(UsageLedger):
    def __init__(
        self,
        table: str,
        *,
        client: Callable[[], Any],
        retention_days: int,
        clock: Callable[[], float],
    ) -> None:
        self._table = _Table(table, client)
        self._retention_seconds = retention_days * 86_400
        self._clock = clock
        self._indexed: set[tuple[str, dt.date]] = set()

    async def record(self, *, key: str, model: str, day: dt.date, totals: Totals) -> None:
        await _in_thread(self._record, key, model, day, totals)

    async def entries(
        self, *, keys: Sequence[str] | None, start: dt.date, end: dt.date
    ) -> list[UsageEntry]:
        return await _in_thread(self._entries, keys, start, end)

    def _expires(self) -> dict[str, str]:
        return _n(int(self._clock()) + self._retention_seconds)

    def _record(self, key: str, model: str, day: dt.date, totals: Totals) -> None:
        names = {"#key": "key_name", "#day": "day"}
        values: dict[str, Any] = {
            ":key": {"S": key},
            ":day": {"S": day.isoformat()},
            ":exp": self._expires(),
        }
        adds = []
        for index, (field, amount) in enumerate(zip(_FIELDS, _values(totals), strict=True)):
            names[f"#f{index}"] = f"{field}|{model}"
            values[f":v{index}"] = _n(amount)
            adds.append(f"#f{index} :v{index}")
        client = self._table.client
        client.update_item(
            TableName=self._table.table,
            Key={"pk": {"S": f"usage#{key}#{day.isoformat()}"}},
            UpdateExpression=(
                f"ADD {', '.join(adds)} SET #key = :key, #day = :day, "
                "expires_at = if_not_exists(expires_at, :exp)"
            ),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        if (key, day) not in self._indexed:
            client.update_item(
                TableName=self._table.table,
                Key={"pk": {"S": f"usage-day#{day.isoformat()}"}},
                UpdateExpression="ADD #keys :key SET expires_at = if_not_exists(expires_at, :exp)",
                ExpressionAttributeNames={"#keys": "keys"},
                ExpressionAttributeValues={":key": {"SS": [key]}, ":exp": self._expires()},
            )
            self._indexed.add((key, day))

    def _entries(
        self, keys: Sequence[str] | None, start: dt.date, end: dt.date
    ) -> list[UsageEntry]:
        period = days(start, end)
        if keys is None:
            found: set[str] = set()
            for item in self._get([f"usage-day#{day.isoformat()}" for day in period]):
                found.update(item.get("keys", {}).get("SS", []))
            keys = sorted(found)
        wanted = [f"usage#{key}#{day.isoformat()}" for key in keys for day in period]
        entries = []
        for item in self._get(wanted):
            entries.extend(_parse(item))
        entries.sort(key=lambda entry: (entry.key, entry.day, entry.model))
        return entries

    def _get(self, pks: list[str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        client = self._table.client
        for first in range(0, len(pks), _BATCH):
            request: dict[str, Any] = {
                self._table.table: {
                    "Keys": [{"pk": {"S": pk}} for pk in pks[first : first + _BATCH]],
                    "ConsistentRead": True,
                }
            }
            # DynamoDB may answer part of a batch; the rest comes back as UnprocessedKeys.
            for _ in range(10):
                answer = client.batch_get_item(RequestItems=request)
                items.extend(answer.get("Responses", {}).get(self._table.table, []))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise RuntimeError("DynamoDB kept part of a usage read unprocessed")
        return items


def _parse(item: dict[str, Any]) -> list[UsageEntry]:
    key = item["key_name"]["S"]
    day = dt.date.fromisoformat(item["day"]["S"])
    per_model: dict[str, dict[str, int]] = {}
    for name, value in item.items():
        field, separator, model = name.partition("|")
        if separator and field in _FIELDS and "N" in value:
            per_model.setdefault(model, {})[field] = int(value["N"])
    return [
        UsageEntry(
            key,
            day,
            model,
            Totals(*(fields.get(field, 0) for field in _FIELDS)),
        )
        for model, fields in sorted(per_model.items())
    ]
