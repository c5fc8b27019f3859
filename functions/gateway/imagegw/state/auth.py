"""Client keys: where they are kept, and how a Bearer token becomes a ``Principal``.

Only SHA-256 hashes of keys are kept (keys are long random strings, so a fast hash is enough).
A presented key is hashed and compared with every stored hash in constant time, without stopping
at the first match, so timing says nothing about which or how much of a key matched.

Key stores share one record layout, the JSON the local file and the Secrets Manager secret
hold::

    {"keys": [{"name": "team-a", "sha256": "<hex>", "scopes": ["images:generate", "models:read"],
               "models": ["openai/*", "local/sketch"]}]}

``models`` is optional (absent = every model); ``scopes`` may hold ``"*"``. ``rate`` (images per
minute) and ``quota`` (images per UTC day) are optional limits, enforced by ``limits.py``;
``daily_budget_usd`` (per UTC day) and ``monthly_budget_usd`` (per calendar month, UTC) are
optional spend budgets in USD, enforced by ``budgets.py``. ``usage:all`` lets a key read every
key's usage (``GET /v1/usage``), not only its own.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from imagegw.aws.secrets_cache import CachedSecret
from imagegw.catalog.prices import to_micros
from imagegw.errors import AuthenticationFailed, PermissionDenied, ServiceUnavailable

SCOPE_GENERATE = "images:generate"
SCOPE_MODELS = "models:read"
SCOPE_USAGE_ALL = "usage:all"
ALL_SCOPES = "*"
BUDGET_FIELDS = ("daily_budget_usd", "monthly_budget_usd")


@dataclass(frozen=True)
class ApiKeyRecord:
    name: str
    sha256: str
    scopes: frozenset[str]
    models: tuple[str, ...] | None = None
    rate: int | None = None
    quota: int | None = None
    # Spend budgets in micro-dollars (the record says USD).
    daily_budget_micros: int | None = None
    monthly_budget_micros: int | None = None

    @classmethod
    def from_json(cls, raw: Any) -> ApiKeyRecord:
        if not isinstance(raw, dict):
            raise ValueError("each key entry must be an object")
        digest = raw.get("sha256")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError(f"key {raw.get('name')!r}: 'sha256' must be a hex SHA-256 digest")
        models = raw.get("models")
        return cls(
            name=str(raw.get("name") or "unnamed"),
            sha256=digest.lower(),
            scopes=frozenset(raw.get("scopes") or [ALL_SCOPES]),
            models=tuple(models) if models is not None else None,
            rate=_limit(raw, "rate"),
            quota=_limit(raw, "quota"),
            daily_budget_micros=_budget(raw, "daily_budget_usd"),
            monthly_budget_micros=_budget(raw, "monthly_budget_usd"),
        )


def _limit(raw: dict[str, Any], field: str) -> int | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"key {raw.get('name')!r}: {field!r} must be a positive whole number")
    return value


def _budget(raw: dict[str, Any], field: str) -> int | None:
    """A budget in USD (a JSON number, or a decimal string) as micro-dollars."""
    value = raw.get(field)
    if value is None:
        return None
    problem = f"key {raw.get('name')!r}: {field!r} must be a positive amount of USD"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(problem)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(problem) from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(problem)
    return to_micros(amount)


def records_from_document(document: Any) -> tuple[ApiKeyRecord, ...]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('the key document must be {"keys": [...]}')
    return tuple(ApiKeyRecord.from_json(raw) for raw in document["keys"])


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (never the key), its scopes and allowed models."""

    name: str
    scopes: frozenset[str]
    models: tuple[str, ...] | None
    rate: int | None = None  # images per minute
    quota: int | None = None  # images per UTC day
    daily_budget_micros: int | None = None  # USD per UTC day, in micro-dollars
    monthly_budget_micros: int | None = None  # USD per calendar month (UTC), in micro-dollars

    @property
    def has_budget(self) -> bool:
        return self.daily_budget_micros is not None or self.monthly_budget_micros is not None

    def require(self, scope: str) -> None:
        if ALL_SCOPES not in self.scopes and scope not in self.scopes:
            raise PermissionDenied(
                f"This API key does not have the '{scope}' scope needed for this request."
            )

    def require_model(self, model_id: str) -> None:
        if self.models is None:
            return
        if not any(fnmatch.fnmatchcase(model_id, pattern) for pattern in self.models):
            raise PermissionDenied(
                f"This API key is not allowed to use the model `{model_id}`.",
                param="model",
                code="model_not_allowed",
            )


class KeyStore(ABC):
    @abstractmethod
    async def records(self) -> Sequence[ApiKeyRecord]:
        """The current keys; raise ``ServiceUnavailable`` when they cannot be read."""


class StaticKeyStore(KeyStore):
    """Keys given as plain text (``IMAGEGW_API_KEYS``): hashed at once, never kept in clear."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._records = tuple(
            ApiKeyRecord(
                name=f"env-key-{index}", sha256=hash_key(key), scopes=frozenset({ALL_SCOPES})
            )
            for index, key in enumerate(keys, start=1)
        )

    async def records(self) -> Sequence[ApiKeyRecord]:
        return self._records


class FileKeyStore(KeyStore):
    """A JSON file of hashed keys, re-read when it changes (revoking = deleting an entry)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._cache: tuple[tuple[int, int, int], tuple[ApiKeyRecord, ...]] | None = None

    async def records(self) -> Sequence[ApiKeyRecord]:
        return await asyncio.to_thread(self._load)

    def _load(self) -> tuple[ApiKeyRecord, ...]:
        try:
            stat = self._path.stat()
            # Not the mtime alone: two writes within one tick of the filesystem's clock share
            # it, and a revocation would go unnoticed. A replaced file (the keys command
            # writes a new one) has a new inode; an edit in place usually a new size.
            version = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if self._cache is not None and self._cache[0] == version:
                return self._cache[1]
            records = records_from_document(json.loads(self._path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ServiceUnavailable(
                "The gateway's client key file cannot be read; check IMAGEGW_API_KEYS_FILE.",
                code="key_store_unavailable",
            ) from exc
        self._cache = (version, records)
        return records


class SecretKeyStore(KeyStore):
    """The client keys secret in Secrets Manager (same layout as the file), cached with a TTL.

    Revoking a key is deleting its entry: warm processes stop accepting it within the TTL.
    """

    def __init__(self, secret: CachedSecret) -> None:
        self._secret = secret
        self._parsed: tuple[object, tuple[ApiKeyRecord, ...]] | None = None

    async def records(self) -> Sequence[ApiKeyRecord]:
        document = await self._secret.value()
        if self._parsed is not None and self._parsed[0] is document:
            return self._parsed[1]
        try:
            records = records_from_document(document)
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceUnavailable(
                f"The gateway's {self._secret.role} does not hold a valid key list.",
                code="key_store_unavailable",
            ) from exc
        self._parsed = (document, records)
        return records


class CombinedKeyStore(KeyStore):
    def __init__(self, stores: Sequence[KeyStore]) -> None:
        self._stores = tuple(stores)

    async def records(self) -> Sequence[ApiKeyRecord]:
        found: list[ApiKeyRecord] = []
        for store in self._stores:
            found.extend(await store.records())
        return found


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed(
            "You didn't provide an API key. Provide it in an Authorization header using Bearer "
            "auth (Authorization: Bearer YOUR_KEY).",
            code="missing_api_key",
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed(
            "The Authorization header must have the form 'Bearer YOUR_KEY'.",
            code="invalid_api_key",
        )
    return token


def identify(token: str, records: Sequence[ApiKeyRecord]) -> Principal:
    presented = hash_key(token).encode("ascii")
    match: ApiKeyRecord | None = None
    for record in records:
        # Every record is compared, whatever matched before: no early exit.
        if hmac.compare_digest(presented, record.sha256.encode("ascii")):
            match = record
    if match is None:
        raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
    return Principal(
        name=match.name,
        scopes=match.scopes,
        models=match.models,
        rate=match.rate,
        quota=match.quota,
        daily_budget_micros=match.daily_budget_micros,
        monthly_budget_micros=match.monthly_budget_micros,
    )


def principal_named(name: str, records: Sequence[ApiKeyRecord]) -> Principal | None:
    """The key called ``name`` (events name the key they run as), else None."""
    for record in records:
        if record.name == name:
            return Principal(
                name=record.name,
                scopes=record.scopes,
                models=record.models,
                rate=record.rate,
                quota=record.quota,
            )
    return None


async def authenticate(authorization: str | None, store: KeyStore) -> Principal:
    token = bearer_token(authorization)
    return identify(token, await store.records())
