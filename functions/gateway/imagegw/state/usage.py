"""The usage ledger: what each key spent on each model each UTC day, and the reports made from it.

Every generation that delivered images adds one entry (settle time, sync or job): a request, its
images, and its cost in micro-dollars, or its images as *unpriced* when the model has no known
price. ``GET /v1/usage`` and the operators' report read the same entries back, grouped by model,
key or day. Locally the ledger is in memory; with ``IMAGEGW_IDEMPOTENCY_TABLE`` it lives in that
DynamoDB table (``usage_dynamodb.py``), one item per key and day.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from imagegw.catalog.prices import CURRENCY, Cost, from_micros
from imagegw.errors import InvalidValue

GroupBy = Literal["model", "key", "day"]
GROUPS: tuple[GroupBy, ...] = ("model", "key", "day")


@dataclass(frozen=True)
class Totals:
    requests: int = 0
    images: int = 0
    cost_micros: int = 0
    # Requests whose cost was estimated from catalog rows rather than the upstream's figures.
    estimated_requests: int = 0
    # Images of models without a known price: not in cost_micros.
    unpriced_images: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.requests + other.requests,
            self.images + other.images,
            self.cost_micros + other.cost_micros,
            self.estimated_requests + other.estimated_requests,
            self.unpriced_images + other.unpriced_images,
        )

    @classmethod
    def of(cls, images: int, cost: Cost | None) -> Totals:
        if cost is None:
            return cls(requests=1, images=images, unpriced_images=images)
        return cls(
            requests=1,
            images=images,
            cost_micros=cost.micros,
            estimated_requests=1 if cost.estimated else 0,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "images": self.images,
            "cost": {
                "amount": float(from_micros(self.cost_micros)),
                "currency": CURRENCY,
                "estimated": self.estimated_requests > 0,
            },
            "estimated_requests": self.estimated_requests,
            "unpriced_images": self.unpriced_images,
        }


@dataclass(frozen=True)
class UsageEntry:
    key: str
    day: dt.date
    model: str
    totals: Totals = field(default_factory=Totals)


class UsageLedger(ABC):
    @abstractmethod
    async def record(self, *, key: str, model: str, day: dt.date, totals: Totals) -> None:
        """Add ``totals`` to the key's entry for the model on that day."""

    @abstractmethod
    async def entries(
        self, *, keys: Sequence[str] | None, start: dt.date, end: dt.date
    ) -> list[UsageEntry]:
        """Entries from ``start`` to ``end`` (both included); ``keys`` None: every key."""


class MemoryUsageLedger(UsageLedger):
    """One process's ledger (development, tests)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, dt.date, str], Totals] = {}

    async def record(self, *, key: str, model: str, day: dt.date, totals: Totals) -> None:
        slot = (key, day, model)
        self._entries[slot] = self._entries.get(slot, Totals()) + totals

    async def entries(
        self, *, keys: Sequence[str] | None, start: dt.date, end: dt.date
    ) -> list[UsageEntry]:
        wanted = set(keys) if keys is not None else None
        return [
            UsageEntry(key, day, model, totals)
            for (key, day, model), totals in sorted(self._entries.items())
            if start <= day <= end and (wanted is None or key in wanted)
        ]


@dataclass(frozen=True)
class UsageRow:
    group: str
    totals: Totals


def group_entries(entries: Iterable[UsageEntry], group_by: GroupBy) -> list[UsageRow]:
    """Entries summed per model, key or day, in the group's natural order."""
    sums: dict[str, Totals] = {}
    for entry in entries:
        name = entry.day.isoformat() if group_by == "day" else getattr(entry, group_by)
        sums[name] = sums.get(name, Totals()) + entry.totals
    return [UsageRow(name, totals) for name, totals in sorted(sums.items())]


def total(rows: Iterable[UsageRow]) -> Totals:
    result = Totals()
    for row in rows:
        result = result + row.totals
    return result


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=offset) for offset in range((end - start).days + 1)]


MAX_DAYS = 366


def parse_day(value: str, param: str) -> dt.date:
    """``YYYY-MM-DD``, or unix seconds (the UTC day they fall in)."""
    text = value.strip()
    try:
        if text.isascii() and text.isdigit():
            return dt.datetime.fromtimestamp(int(text), tz=dt.UTC).date()
        return dt.date.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise InvalidValue(
            f"Invalid value for '{param}': '{value}'. Use a date (YYYY-MM-DD) or unix seconds.",
            param=param,
        ) from None


def period(start: str | None, end: str | None, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days a report covers, both included: by default the current month up to today."""
    last = parse_day(end, "end") if end else today
    first = parse_day(start, "start") if start else last.replace(day=1)
    if first > last:
        raise InvalidValue(
            f"Invalid period: 'start' ({first}) is after 'end' ({last}).", param="start"
        )
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidValue(
            f"Invalid period: {first} to {last} is more than {MAX_DAYS} days; ask in parts.",
            param="start",
        )
    return first, last


def parse_group_by(value: str | None) -> GroupBy:
    chosen = value or "day"
    for name in GROUPS:
        if chosen == name:
            return name
    raise InvalidValue(
        f"Invalid value for 'group_by': '{chosen}'. Use one of: {', '.join(GROUPS)}.",
        param="group_by",
    )


def report(
    entries: Iterable[UsageEntry],
    *,
    by: GroupBy,
    start: dt.date,
    end: dt.date,
    keys: Sequence[str] | None,
) -> dict[str, Any]:
    """The ``GET /v1/usage`` document: one row per group, and the total."""
    rows = group_entries(entries, by)
    return {
        "object": "usage",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "group_by": by,
        "keys": list(keys) if keys is not None else "all",
        "data": [{by: row.group, **row.totals.to_json()} for row in rows],
        "total": total(rows).to_json(),
    }


def format_table(document: dict[str, Any]) -> str:
    """A report as text columns, for operators (``python -m imagegw.cli.keys usage``)."""
    by = document["group_by"]
    header = (by, "requests", "images", "cost_usd", "estimated", "unpriced_images")
    lines = [header]
    for row in [*document["data"], {by: "total", **document["total"]}]:
        cost = row["cost"]
        lines.append(
            (
                str(row[by]),
                str(row["requests"]),
                str(row["images"]),
                f"{cost['amount']:.6f}",
                "yes" if cost["estimated"] else "no",
                str(row["unpriced_images"]),
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    title = f"usage {document['start']} to {document['end']} (UTC), by {by}"
    body = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    return "\n".join([title, *body]) + "\n"
