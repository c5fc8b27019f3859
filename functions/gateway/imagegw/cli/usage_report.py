"""The operators' usage report: requests, images and cost by model, key or day.

Two sources, the same report (``state/usage.py``):

- ``--table``: the state table itself (``IMAGEGW_IDEMPOTENCY_TABLE``), with the operator's AWS
  credentials (``dynamodb:BatchGetItem``): every key, revoked ones included;
- ``--url``: a running gateway's ``GET /v1/usage``, with a key in ``IMAGEGW_API_KEY`` (a key with
  the ``usage:all`` scope sees every key). This is how ``make dev``'s in-memory ledger is read.

``imagegw usage`` (its API by default) and ``imagegw keys usage`` / ``python -m imagegw.cli.keys
usage`` run it; ``usage_report`` is the function behind them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from imagegw.state.usage import (
    GROUPS,
    format_table,
    parse_group_by,
    period,
    report,
)

API_KEY_VARIABLE = "IMAGEGW_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--table", help="the state table (default: IMAGEGW_IDEMPOTENCY_TABLE)", default=None
    )
    source.add_argument("--url", help="a gateway's base URL: read its GET /v1/usage")
    parser.add_argument("--start", help="first UTC day, YYYY-MM-DD (default: the 1st)")
    parser.add_argument("--end", help="last UTC day, YYYY-MM-DD (default: today)")
    parser.add_argument("--group-by", choices=GROUPS, default="day")
    parser.add_argument(
        "--key", dest="keys", action="append", help="only this key's usage (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="the report as JSON")


def usage_report(
    *,
    table: str | None = None,
    url: str | None = None,
    start: str | None = None,
    end: str | None = None,
    group_by: str = "day",
    keys: Sequence[str] | None = None,
    as_json: bool = False,
    api_key: str | None = None,
    dynamodb: Any = None,
    http: Any = None,
) -> str:
    """The report as text (or JSON); ``ValueError`` says what is wrong with the request.

    ``url`` is the gateway's base URL (``/v1`` or not); ``api_key`` defaults to
    ``IMAGEGW_API_KEY``.
    """
    if url is not None:
        key = api_key or os.environ.get(API_KEY_VARIABLE)
        document = _from_gateway(url, key, start, end, group_by, keys, http)
    else:
        document = _from_table(table, start, end, group_by, keys, dynamodb)
    if as_json:
        return json.dumps(document, indent=2) + "\n"
    return format_table(document)


def run(arguments: argparse.Namespace) -> str:
    return usage_report(
        table=arguments.table,
        url=arguments.url,
        start=arguments.start,
        end=arguments.end,
        group_by=arguments.group_by,
        keys=arguments.keys,
        as_json=arguments.json,
    )


def _from_table(
    table: str | None,
    start: str | None,
    end: str | None,
    group_by: str,
    keys: Sequence[str] | None,
    dynamodb: Any,
) -> dict[str, Any]:
    from imagegw.errors import InvalidValue
    from imagegw.state.dynamodb import dynamodb_client
    from imagegw.state.usage_dynamodb import DynamoDBUsageLedger

    name = table or os.environ.get("IMAGEGW_IDEMPOTENCY_TABLE")
    if not name:
        raise ValueError(
            "say where usage lives: --table NAME (or IMAGEGW_IDEMPOTENCY_TABLE), or --url"
        )
    today = dt.datetime.now(tz=dt.UTC).date()
    try:
        by = parse_group_by(group_by)
        first, last = period(start, end, today)
    except InvalidValue as exc:
        raise ValueError(exc.message) from exc
    ledger = DynamoDBUsageLedger(
        name,
        client=(lambda: dynamodb) if dynamodb is not None else dynamodb_client,
        retention_days=1,  # only read here
        clock=time.time,
    )
    entries = asyncio.run(ledger.entries(keys=keys, start=first, end=last))
    return report(entries, by=by, start=first, end=last, keys=keys)


def _from_gateway(
    url: str,
    api_key: str | None,
    start: str | None,
    end: str | None,
    group_by: str,
    keys: Sequence[str] | None,
    http: Any,
) -> dict[str, Any]:
    import httpx

    if not api_key:
        raise ValueError(f"--url needs a key in {API_KEY_VARIABLE}")
    if keys is not None and len(keys) > 1:
        raise ValueError("--url reads one --key at a time (or all, with a usage:all key)")
    params = {"group_by": group_by}
    for name, value in (("start", start), ("end", end), ("key", keys[0] if keys else None)):
        if value is not None:
            params[name] = value
    client = http or httpx.Client(timeout=30)
    try:
        response = client.get(
            url.rstrip("/").removesuffix("/v1") + "/v1/usage",
            params=params,
            headers={"Authorization": f"Bearer {api_key}"},
        )
    except httpx.HTTPError as exc:
        raise ValueError(f"the gateway at {url} could not be reached: {exc}") from exc
    finally:
        if http is None:
            client.close()
    document: Any = response.json() if response.content else None
    if response.status_code != 200:
        error = document.get("error", {}) if isinstance(document, dict) else {}
        raise ValueError(
            f"the gateway answered {response.status_code}: {error.get('message', response.text)}"
        )
    if not isinstance(document, dict):
        raise ValueError("the gateway's answer is not a usage report")
    return document
