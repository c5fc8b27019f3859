"""Authentication and authorisation over HTTP: 401 missing vs invalid, 403 scope and model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import GENERATIONS, assert_error, bearer, client_for, write_key_file
from fastapi.testclient import TestClient

from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings
from imagegw.state.auth import FileKeyStore

from conftest import API_KEY, AUTH
from support.fakes import FakeClock, FakeProvider

GENERATE_ONLY = "sk-generate-only-000000000000"
MODELS_ONLY = "sk-models-only-1111111111111"
LOCAL_ONLY = "sk-local-only-22222222222222"
EVERYTHING = "sk-everything-3333333333333"

GENERATION = {"model": "local/sketch", "prompt": "a fox", "size": "256x256"}


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return write_key_file(
        tmp_path / "keys.json",
        [
            {"name": "generate-only", "key": GENERATE_ONLY, "scopes": ["images:generate"]},
            {"name": "models-only", "key": MODELS_ONLY, "scopes": ["models:read"]},
            {
                "name": "local-only",
                "key": LOCAL_ONLY,
                "scopes": ["images:generate", "models:read"],
                "models": ["local/*"],
            },
            {"name": "everything", "key": EVERYTHING, "scopes": ["*"]},
        ],
    )


@pytest.fixture
def keyed_client(
    settings: Settings, clock: FakeClock, fake_provider: FakeProvider, key_file: Path
) -> Iterator[TestClient]:
    runtime = Runtime(
        settings,
        key_store=FileKeyStore(key_file),
        providers={"openai": fake_provider},
        clock=clock,
    )
    with client_for(runtime) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", GENERATIONS), ("GET", "/v1/models"), ("GET", "/v1/models/local/sketch")],
)
def test_missing_key_is_401_missing_api_key(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json=GENERATION)
    message = assert_error(
        response, 401, code="missing_api_key", error_type="invalid_request_error"
    )
    assert "Bearer" in message


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer sk-not-a-key",
        f"Bearer {API_KEY}x",
        f"Basic {API_KEY}",
        "Bearer",
        API_KEY,
    ],
)
def test_invalid_key_is_401_invalid_api_key(
    client: TestClient, fake_provider: FakeProvider, authorization: str
) -> None:
    response = client.post(GENERATIONS, json=GENERATION, headers={"Authorization": authorization})
    message = assert_error(
        response, 401, code="invalid_api_key", error_type="invalid_request_error"
    )
    assert API_KEY not in message
    assert fake_provider.requests == []


def test_the_configured_key_is_accepted(client: TestClient) -> None:
    assert client.post(GENERATIONS, json=GENERATION, headers=AUTH).status_code == 200


def test_key_without_the_generate_scope_is_403(
    keyed_client: TestClient, fake_provider: FakeProvider
) -> None:
    response = keyed_client.post(
        GENERATIONS,
        json={"model": "openai/gpt-image-1.5", "prompt": "x"},
        headers=bearer(MODELS_ONLY),
    )
    message = assert_error(response, 403, code="insufficient_scope", error_type="permission_error")
    assert "images:generate" in message
    assert fake_provider.requests == []


def test_key_without_the_models_scope_is_403(keyed_client: TestClient) -> None:
    response = keyed_client.get("/v1/models", headers=bearer(GENERATE_ONLY))
    message = assert_error(response, 403, code="insufficient_scope")
    assert "models:read" in message


@pytest.mark.parametrize(
    ("key", "model"),
    [
        (GENERATE_ONLY, "local/sketch"),
        (LOCAL_ONLY, "local/sketch"),
        (EVERYTHING, "local/sketch"),
        (EVERYTHING, "openai/gpt-image-1.5"),
    ],
)
def test_keys_with_the_scope_generate(keyed_client: TestClient, key: str, model: str) -> None:
    response = keyed_client.post(
        GENERATIONS, json={**GENERATION, "model": model, "size": "1024x1024"}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == model


@pytest.mark.parametrize("model", ["openai/gpt-image-1.5", "gpt-image-2", "openai/gpt-image-2"])
def test_key_limited_to_some_models_is_403_for_others(
    keyed_client: TestClient, fake_provider: FakeProvider, model: str
) -> None:
    response = keyed_client.post(
        GENERATIONS, json={"model": model, "prompt": "x"}, headers=bearer(LOCAL_ONLY)
    )
    message = assert_error(
        response, 403, code="model_not_allowed", param="model", error_type="permission_error"
    )
    assert "openai/gpt-image-" in message
    assert fake_provider.requests == []


def test_key_limited_to_some_models_lists_only_those(keyed_client: TestClient) -> None:
    response = keyed_client.get("/v1/models", headers=bearer(LOCAL_ONLY))
    assert response.status_code == 200
    ids = {entry["id"] for entry in response.json()["data"]}
    assert ids == {"local/sketch", "local/canvas", "local/classic"}


def test_key_limited_to_some_models_cannot_describe_others(keyed_client: TestClient) -> None:
    allowed = keyed_client.get("/v1/models/local/canvas", headers=bearer(LOCAL_ONLY))
    assert allowed.status_code == 200
    refused = keyed_client.get("/v1/models/openai/gpt-image-2", headers=bearer(LOCAL_ONLY))
    assert_error(refused, 404, code="model_not_found", param="model")


def test_unlimited_key_lists_every_model(keyed_client: TestClient) -> None:
    response = keyed_client.get("/v1/models", headers=bearer(EVERYTHING))
    ids = {entry["id"] for entry in response.json()["data"]}
    assert {"local/sketch", "openai/gpt-image-1.5", "google/imagen-4.0"} <= ids


def test_revoking_a_key_in_the_file_takes_effect(keyed_client: TestClient, key_file: Path) -> None:
    assert (
        keyed_client.post(GENERATIONS, json=GENERATION, headers=bearer(LOCAL_ONLY)).status_code
        == 200
    )
    before = key_file.stat().st_mtime
    write_key_file(key_file, [{"name": "everything", "key": EVERYTHING, "scopes": ["*"]}])
    os.utime(key_file, (before + 5, before + 5))

    response = keyed_client.post(GENERATIONS, json=GENERATION, headers=bearer(LOCAL_ONLY))
    assert_error(response, 401, code="invalid_api_key")
    assert (
        keyed_client.post(GENERATIONS, json=GENERATION, headers=bearer(EVERYTHING)).status_code
        == 200
    )


def test_unreadable_key_file_is_503(
    keyed_client: TestClient, key_file: Path, fake_provider: FakeProvider
) -> None:
    key_file.write_text("{broken", encoding="utf-8")
    os.utime(key_file, (1_800_000_000, 1_800_000_000))
    response = keyed_client.post(GENERATIONS, json=GENERATION, headers=bearer(EVERYTHING))
    message = assert_error(response, 503, code="key_store_unavailable")
    assert "{broken" not in message


def test_health_needs_no_key(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["x-request-id"].startswith("req_")


def test_health_ignores_an_invalid_key(client: TestClient) -> None:
    assert client.get("/health", headers={"Authorization": "Bearer wrong"}).status_code == 200
