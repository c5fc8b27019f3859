"""Client keys: Bearer parsing, hashed lookup, scopes, model limits and the key file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from imagegw.errors import AuthenticationFailed, PermissionDenied, ServiceUnavailable
from imagegw.state.auth import (
    ApiKeyRecord,
    CombinedKeyStore,
    FileKeyStore,
    Principal,
    StaticKeyStore,
    authenticate,
    bearer_token,
    hash_key,
    identify,
)

KEY_A = "sk-alpha-0000000000000000"
KEY_B = "sk-bravo-1111111111111111"
KEY_C = "sk-charlie-222222222222222"


def _record(
    name: str, key: str, scopes: set[str], models: tuple[str, ...] | None = None
) -> ApiKeyRecord:
    return ApiKeyRecord(name=name, sha256=hash_key(key), scopes=frozenset(scopes), models=models)


RECORDS = [
    _record("alpha", KEY_A, {"images:generate"}),
    _record("bravo", KEY_B, {"models:read"}, ("local/*",)),
    _record("charlie", KEY_C, {"*"}),
]


# ---------------------------------------------------------------- identify


@pytest.mark.parametrize(
    ("key", "name", "scopes", "models"),
    [
        (KEY_A, "alpha", {"images:generate"}, None),
        (KEY_B, "bravo", {"models:read"}, ("local/*",)),
        (KEY_C, "charlie", {"*"}, None),
    ],
)
def test_identify_finds_the_record_of_the_key(
    key: str, name: str, scopes: set[str], models: tuple[str, ...] | None
) -> None:
    assert identify(key, RECORDS) == Principal(name=name, scopes=frozenset(scopes), models=models)


@pytest.mark.parametrize(
    "key",
    [
        "sk-wrong",
        KEY_A[:-1],
        KEY_A + "0",
        KEY_A.upper(),
        hash_key(KEY_A),  # the stored hash is not a key
        "",
    ],
)
def test_identify_rejects_keys_that_are_not_stored(key: str) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        identify(key, RECORDS)
    assert caught.value.status == 401
    assert caught.value.code == "invalid_api_key"
    assert KEY_A not in caught.value.message


def test_identify_with_no_records_rejects_every_key() -> None:
    with pytest.raises(AuthenticationFailed):
        identify(KEY_A, [])


def test_principal_never_carries_the_key_or_its_hash() -> None:
    principal = identify(KEY_A, RECORDS)
    assert KEY_A not in repr(principal)
    assert hash_key(KEY_A) not in repr(principal)


# ---------------------------------------------------------------- the Authorization header


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {KEY_A}", KEY_A),
        (f"bearer {KEY_A}", KEY_A),
        (f"BEARER {KEY_A}", KEY_A),
        (f"Bearer   {KEY_A}  ", KEY_A),
    ],
)
def test_bearer_token_extracts_the_key(header: str, token: str) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, ""])
def test_missing_authorization_header(header: str | None) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        bearer_token(header)
    assert caught.value.status == 401
    assert caught.value.code == "missing_api_key"


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer", "Token sk-x", KEY_A, "Bearer\tsk-x"]
)
def test_malformed_authorization_header(header: str) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        bearer_token(header)
    assert caught.value.status == 401
    assert caught.value.code == "invalid_api_key"


# ---------------------------------------------------------------- scopes and models


@pytest.mark.parametrize(
    ("scopes", "required"),
    [
        ({"images:generate"}, "images:generate"),
        ({"models:read"}, "models:read"),
        ({"images:generate", "models:read"}, "models:read"),
        ({"*"}, "images:generate"),
        ({"*"}, "models:read"),
    ],
)
def test_principal_with_the_scope_passes(scopes: set[str], required: str) -> None:
    Principal(name="k", scopes=frozenset(scopes), models=None).require(required)


@pytest.mark.parametrize(
    ("scopes", "required"),
    [
        ({"images:generate"}, "models:read"),
        ({"models:read"}, "images:generate"),
        (set(), "images:generate"),
        ({"images:*"}, "images:generate"),
    ],
)
def test_principal_without_the_scope_is_denied(scopes: set[str], required: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        Principal(name="k", scopes=frozenset(scopes), models=None).require(required)
    assert caught.value.status == 403
    assert caught.value.code == "insufficient_scope"
    assert required in caught.value.message


PATTERNS = ("openai/gpt-image-*", "local/sketch")


@pytest.mark.parametrize(
    "model_id", ["openai/gpt-image-1.5", "openai/gpt-image-2.5-flare", "local/sketch"]
)
def test_require_model_allows_matching_models(model_id: str) -> None:
    Principal(name="k", scopes=frozenset({"*"}), models=PATTERNS).require_model(model_id)


@pytest.mark.parametrize(
    "model_id", ["openai/dall-e-3", "local/canvas", "local/sketch2", "google/imagen-4.0"]
)
def test_require_model_refuses_other_models(model_id: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        Principal(name="k", scopes=frozenset({"*"}), models=PATTERNS).require_model(model_id)
    assert caught.value.status == 403
    assert caught.value.code == "model_not_allowed"
    assert caught.value.param == "model"
    assert model_id in caught.value.message


def test_require_model_without_a_limit_allows_every_model() -> None:
    Principal(name="k", scopes=frozenset({"*"}), models=None).require_model("anything/at-all")


def test_require_model_with_an_empty_list_allows_nothing() -> None:
    with pytest.raises(PermissionDenied):
        Principal(name="k", scopes=frozenset({"*"}), models=()).require_model("local/sketch")


# ---------------------------------------------------------------- key stores


def _write_keys(path: Path, entries: list[dict[str, Any]], *, mtime: float) -> None:
    path.write_text(json.dumps({"keys": entries}), encoding="utf-8")
    # Set the modification time explicitly: an edit is recognised by it, whatever the clock.
    os.utime(path, (mtime, mtime))


def _entry(name: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "sha256": hash_key(key), **extra}


@pytest.mark.anyio
async def test_file_key_store_reads_hashed_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    _write_keys(
        path,
        [
            _entry("team-a", KEY_A, scopes=["images:generate"], models=["local/*"]),
            # An upper-case digest is the same digest.
            {"name": "team-b", "sha256": hash_key(KEY_B).upper(), "scopes": ["models:read"]},
        ],
        mtime=1_700_000_000,
    )
    store = FileKeyStore(path)
    assert await authenticate(f"Bearer {KEY_A}", store) == Principal(
        name="team-a", scopes=frozenset({"images:generate"}), models=("local/*",)
    )
    assert (await authenticate(f"Bearer {KEY_B}", store)).name == "team-b"
    with pytest.raises(AuthenticationFailed):
        await authenticate(f"Bearer {KEY_C}", store)


@pytest.mark.anyio
async def test_file_key_store_picks_up_a_revocation(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    _write_keys(path, [_entry("a", KEY_A), _entry("b", KEY_B)], mtime=1_700_000_000)
    store = FileKeyStore(path)
    assert (await authenticate(f"Bearer {KEY_B}", store)).name == "b"

    _write_keys(path, [_entry("a", KEY_A)], mtime=1_700_000_060)

    with pytest.raises(AuthenticationFailed) as caught:
        await authenticate(f"Bearer {KEY_B}", store)
    assert caught.value.code == "invalid_api_key"
    assert (await authenticate(f"Bearer {KEY_A}", store)).name == "a"


@pytest.mark.anyio
async def test_file_key_store_picks_up_a_new_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    _write_keys(path, [_entry("a", KEY_A)], mtime=1_700_000_000)
    store = FileKeyStore(path)
    with pytest.raises(AuthenticationFailed):
        await authenticate(f"Bearer {KEY_C}", store)
    _write_keys(path, [_entry("a", KEY_A), _entry("c", KEY_C)], mtime=1_700_000_001)
    assert (await authenticate(f"Bearer {KEY_C}", store)).name == "c"


def test_file_key_store_entry_without_scopes_gets_every_scope() -> None:
    record = ApiKeyRecord.from_json(_entry("a", KEY_A))
    assert record.scopes == frozenset({"*"})
    assert record.models is None


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param("[]", id="array"),
        pytest.param('{"users": []}', id="no-keys"),
        pytest.param('{"keys": [42]}', id="entry-not-object"),
        pytest.param('{"keys": [{"name": "a", "sha256": "abc"}]}', id="short-digest"),
        pytest.param('{"keys": [{"name": "a"}]}', id="no-digest"),
        pytest.param('{"keys": null}', id="keys-null"),
    ],
)
@pytest.mark.anyio
async def test_broken_key_file_is_service_unavailable(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ServiceUnavailable) as caught:
        await FileKeyStore(path).records()
    assert caught.value.status == 503
    assert caught.value.code == "key_store_unavailable"


@pytest.mark.anyio
async def test_missing_key_file_is_service_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        await FileKeyStore(tmp_path / "absent.json").records()
    assert caught.value.status == 503


@pytest.mark.anyio
async def test_key_file_broken_by_an_edit_is_service_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    _write_keys(path, [_entry("a", KEY_A)], mtime=1_700_000_000)
    store = FileKeyStore(path)
    assert len(await store.records()) == 1
    path.write_text("{", encoding="utf-8")
    os.utime(path, (1_700_000_100, 1_700_000_100))
    with pytest.raises(ServiceUnavailable):
        await store.records()


@pytest.mark.anyio
async def test_static_key_store_keeps_only_hashes() -> None:
    store = StaticKeyStore([KEY_A, KEY_B])
    records = await store.records()
    assert [record.sha256 for record in records] == [hash_key(KEY_A), hash_key(KEY_B)]
    assert all(KEY_A not in repr(record) for record in records)
    assert (await authenticate(f"Bearer {KEY_B}", store)).scopes == frozenset({"*"})


@pytest.mark.anyio
async def test_combined_key_store_accepts_keys_of_every_store(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    _write_keys(path, [_entry("from-file", KEY_B, scopes=["models:read"])], mtime=1_700_000_000)
    store = CombinedKeyStore([StaticKeyStore([KEY_A]), FileKeyStore(path)])
    assert (await authenticate(f"Bearer {KEY_A}", store)).name == "env-key-1"
    assert (await authenticate(f"Bearer {KEY_B}", store)).name == "from-file"
    with pytest.raises(AuthenticationFailed):
        await authenticate(f"Bearer {KEY_C}", store)
