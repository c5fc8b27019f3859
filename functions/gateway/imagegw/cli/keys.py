"""Operator command for client keys: ``imagegw keys create|revoke|list|budget|usage``.

Also ``python -m imagegw.cli.keys ...`` (the same arguments), which needs neither click nor rich.

A key is printed once, when it is created; only its SHA-256 hash, name, scopes and allowed models
are stored, in the client keys secret (``--secret-id``, default ``IMAGEGW_CLIENT_KEYS_SECRET_ID``)
or in a local key file (``--file``, the format ``IMAGEGW_API_KEYS_FILE`` reads). Revoking a key is
removing its entry; running gateways stop accepting it within the secret's cache TTL. ``budget``
sets or clears a key's spend budgets (USD per UTC day and per calendar month); running gateways
apply the change within the same TTL. ``usage`` prints what keys spent (``usage_report.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

from imagegw.catalog.prices import from_micros, usd
from imagegw.cli import usage_report
from imagegw.state.auth import (
    ALL_SCOPES,
    BUDGET_FIELDS,
    SCOPE_GENERATE,
    SCOPE_MODELS,
    SCOPE_USAGE_ALL,
    hash_key,
    records_from_document,
)

KEY_PREFIX = "sk-imagegw-"


class KeyDocumentStore(Protocol):
    def load(self) -> dict[str, Any]: ...

    def save(self, document: dict[str, Any]) -> None: ...


class FileDocument:
    def __init__(self, path: Path) -> None:
        self._path = path

    def load(self) -> dict[str, Any]:
        if not self._path.exists():
            return {"keys": []}
        document: dict[str, Any] = json.loads(self._path.read_text(encoding="utf-8"))
        return document

    def save(self, document: dict[str, Any]) -> None:
        partial = self._path.with_name(self._path.name + ".partial")
        partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        partial.chmod(0o600)
        os.replace(partial, self._path)


class SecretDocument:
    """The client keys secret; created on first use if it does not exist yet."""

    def __init__(self, secret_id: str, client: Any = None) -> None:
        self._secret_id = secret_id
        self._client = client

    def _secrets(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("secretsmanager")
        return self._client

    def load(self) -> dict[str, Any]:
        client = self._secrets()
        try:
            raw = client.get_secret_value(SecretId=self._secret_id)["SecretString"]
        except client.exceptions.ResourceNotFoundException:
            return {"keys": []}
        document: dict[str, Any] = json.loads(raw)
        return document

    def save(self, document: dict[str, Any]) -> None:
        client = self._secrets()
        text = json.dumps(document)
        try:
            client.put_secret_value(SecretId=self._secret_id, SecretString=text)
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(
                Name=self._secret_id,
                SecretString=text,
                Description="imagegw client keys (hashes only)",
            )


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(
    store: KeyDocumentStore,
    *,
    name: str,
    scopes: Sequence[str],
    models: Sequence[str] | None,
    rate: int | None = None,
    quota: int | None = None,
    daily_budget_usd: str | None = None,
    monthly_budget_usd: str | None = None,
) -> str:
    document = store.load()
    records_from_document(document)  # refuse to extend a document the gateway could not read
    if any(entry.get("name") == name for entry in document["keys"]):
        raise ValueError(f"a key named {name!r} already exists; revoke it first or pick a name")
    key = new_api_key()
    entry: dict[str, Any] = {"name": name, "sha256": hash_key(key), "scopes": list(scopes)}
    if models:
        entry["models"] = list(models)
    if rate is not None:
        entry["rate"] = rate
    if quota is not None:
        entry["quota"] = quota
    for field, amount in zip(BUDGET_FIELDS, (daily_budget_usd, monthly_budget_usd), strict=True):
        if amount is not None:
            entry[field] = _usd_number(amount, field)
    records_from_document({"keys": [entry]})  # the gateway must accept what is written
    document["keys"].append(entry)
    store.save(document)
    return key


NO_BUDGET = "none"


def set_budgets(
    store: KeyDocumentStore,
    *,
    name: str,
    daily_budget_usd: str | None = None,
    monthly_budget_usd: str | None = None,
) -> dict[str, Any]:
    """Set (an amount) or clear (``"none"``) a key's budgets; None leaves one as it is."""
    document = store.load()
    records_from_document(document)
    entry: dict[str, Any] | None = next(
        (entry for entry in document["keys"] if entry.get("name") == name), None
    )
    if entry is None:
        raise ValueError(f"no key named {name!r}")
    for field, amount in zip(BUDGET_FIELDS, (daily_budget_usd, monthly_budget_usd), strict=True):
        if amount is None:
            continue
        if amount.strip().lower() == NO_BUDGET:
            entry.pop(field, None)
        else:
            entry[field] = _usd_number(amount, field)
    records_from_document(document)  # the gateway must accept what is written
    store.save(document)
    return entry


def _usd_number(text: str, field: str) -> int | float:
    """An amount of USD as the JSON number written to the key record."""
    try:
        amount = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise ValueError(f"{field}: {text!r} is not an amount of USD") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{field}: {text!r} must be a positive amount of USD")
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _usd_text(micros: int | None) -> str:
    return "-" if micros is None else usd(from_micros(micros))


def revoke_key(store: KeyDocumentStore, *, name: str) -> None:
    document = store.load()
    kept = [entry for entry in document.get("keys", []) if entry.get("name") != name]
    if len(kept) == len(document.get("keys", [])):
        raise ValueError(f"no key named {name!r}")
    document["keys"] = kept
    store.save(document)


def _store(arguments: argparse.Namespace) -> KeyDocumentStore:
    if arguments.file is not None:
        return FileDocument(Path(arguments.file))
    secret_id = arguments.secret_id or os.environ.get("IMAGEGW_CLIENT_KEYS_SECRET_ID")
    if not secret_id:
        raise ValueError("say where keys live: --secret-id ID (or IMAGEGW_CLIENT_KEYS_SECRET_ID)")
    return SecretDocument(secret_id)


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m imagegw.cli.keys") -> int:
    """The command line (``imagegw keys`` hands its arguments here, unchanged)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--secret-id", help="name or ARN of the client keys secret")
    where.add_argument("--file", help="a local key file instead of Secrets Manager")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        choices=[SCOPE_GENERATE, SCOPE_MODELS, SCOPE_USAGE_ALL, ALL_SCOPES],
        help=f"repeatable; default: {SCOPE_GENERATE} and {SCOPE_MODELS}",
    )
    create.add_argument(
        "--model", dest="models", action="append", help="allowed model pattern (repeatable)"
    )
    create.add_argument("--rate", type=int, help="images per minute (default: unlimited)")
    create.add_argument("--quota", type=int, help="images per UTC day (default: unlimited)")
    create.add_argument("--daily-budget-usd", help="USD per UTC day (default: unlimited)")
    create.add_argument("--monthly-budget-usd", help="USD per calendar month (default: unlimited)")
    budget = commands.add_parser(
        "budget", help="set or clear a key's spend budgets (an amount, or 'none')"
    )
    budget.add_argument("--name", required=True)
    budget.add_argument("--daily-usd", help="USD per UTC day, or 'none' to remove the budget")
    budget.add_argument("--monthly-usd", help="USD per calendar month, or 'none' to remove it")
    revoke = commands.add_parser("revoke", help="remove a key by name")
    revoke.add_argument("--name", required=True)
    commands.add_parser("list", help="names, scopes and models (never hashes)")
    report = commands.add_parser(
        "usage", help="requests, images and cost by model, key or day (the state table or --url)"
    )
    usage_report.add_arguments(report)
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "usage":
            print(usage_report.run(arguments), end="")
            return 0
        store = _store(arguments)
        if arguments.command == "create":
            scopes = arguments.scopes or [SCOPE_GENERATE, SCOPE_MODELS]
            key = create_key(
                store,
                name=arguments.name,
                scopes=scopes,
                models=arguments.models,
                rate=arguments.rate,
                quota=arguments.quota,
                daily_budget_usd=arguments.daily_budget_usd,
                monthly_budget_usd=arguments.monthly_budget_usd,
            )
            print(key)
            print(f"Key {arguments.name!r} created. It is shown only this once.", file=sys.stderr)
        elif arguments.command == "budget":
            if arguments.daily_usd is None and arguments.monthly_usd is None:
                raise ValueError("say what to set: --daily-usd and/or --monthly-usd")
            set_budgets(
                store,
                name=arguments.name,
                daily_budget_usd=arguments.daily_usd,
                monthly_budget_usd=arguments.monthly_usd,
            )
            print(f"Budgets of key {arguments.name!r} updated.", file=sys.stderr)
        elif arguments.command == "revoke":
            revoke_key(store, name=arguments.name)
            print(f"Key {arguments.name!r} revoked.", file=sys.stderr)
        else:
            for record in records_from_document(store.load()):
                models = ",".join(record.models) if record.models is not None else "*"
                limits = (
                    f"rate={record.rate or '-'}\tquota={record.quota or '-'}"
                    f"\tdaily_budget={_usd_text(record.daily_budget_micros)}"
                    f"\tmonthly_budget={_usd_text(record.monthly_budget_micros)}"
                )
                print(
                    f"{record.name}\tscopes={','.join(sorted(record.scopes))}"
                    f"\tmodels={models}\t{limits}"
                )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
