"""`GET /v1/models`, `GET /v1/models/{id}` and the OpenAPI document."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from api_support import GENERATIONS, assert_error
from fastapi.testclient import TestClient

from conftest import AUTH


def _models(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/models", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert isinstance(body["data"], list)
    data: list[dict[str, Any]] = body["data"]
    return data


def test_model_list_has_openai_shape(client: TestClient) -> None:
    data = _models(client)
    assert len(data) >= 12
    for entry in data:
        assert {"id", "object", "created", "owned_by", "shutdown_date", "capabilities"} <= set(
            entry
        )
        assert entry["object"] == "model"
        assert isinstance(entry["created"], int)
        assert isinstance(entry["owned_by"], str)
        assert entry["owned_by"]
        if entry["shutdown_date"] is not None:
            assert (
                dt.date.fromisoformat(entry["shutdown_date"]).isoformat() == entry["shutdown_date"]
            )
        capabilities = entry["capabilities"]
        assert capabilities["n"]["min"] == 1
        assert capabilities["n"]["max"] >= 1
        assert capabilities["response_formats"] == ["b64_json", "url"]
        assert isinstance(capabilities["prompt_max_chars"], int)
    ids = [entry["id"] for entry in data]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("model_id", "shutdown_date", "status"),
    [
        ("openai/dall-e-3", "2026-05-12", "retired"),
        ("openai/gpt-image-1.5", "2026-12-01", "deprecated"),
        ("openai/gpt-image-2", None, "active"),
        ("local/sketch", None, "active"),
        ("google/imagen-4.0", "2026-08-17", "retired"),
        ("bfl/flux-2-pro", None, "active"),
        ("bfl/flux-kontext-pro", None, "legacy"),
        ("bfl/flux-3-image", None, "disabled"),
    ],
)
def test_models_carry_their_lifecycle(
    client: TestClient, model_id: str, shutdown_date: str | None, status: str
) -> None:
    entry = {model["id"]: model for model in _models(client)}[model_id]
    assert entry["shutdown_date"] == shutdown_date
    assert entry["status"] == status


def test_capabilities_describe_what_the_model_takes(client: TestClient) -> None:
    entries = {model["id"]: model for model in _models(client)}
    dalle3 = entries["openai/dall-e-3"]["capabilities"]
    assert dalle3["n"] == {"min": 1, "max": 1}
    assert dalle3["sizes"] == ["1024x1024", "1792x1024", "1024x1792"]
    assert dalle3["styles"] == ["vivid", "natural"]
    assert dalle3["prompt_max_chars"] == 4000
    assert dalle3["free_size"] is None
    gpt2 = entries["openai/gpt-image-2"]["capabilities"]
    assert gpt2["free_size"]["multiple_of"] == 16
    assert gpt2["free_size"]["max_edge"] == 3840
    google = entries["google/imagen-4.0"]["capabilities"]
    assert {"quality", "style"} <= set(google["ignored_parameters"])
    assert google["n"]["max"] == 4


def test_local_models_are_described_as_offline_stand_ins(client: TestClient) -> None:
    entries = {model["id"]: model for model in _models(client)}
    for model_id in ("local/sketch", "local/canvas", "local/classic"):
        description = entries[model_id]["capabilities"]["description"].lower()
        assert "offline" in description
        assert entries[model_id]["owned_by"] == "local"


def test_bare_id_describes_the_openai_model(client: TestClient) -> None:
    response = client.get("/v1/models/dall-e-3", headers=AUTH)
    assert response.status_code == 200, response.text
    entry = response.json()
    assert entry["id"] == "openai/dall-e-3"
    assert entry["object"] == "model"
    assert entry["shutdown_date"] == "2026-05-12"
    assert entry["capabilities"]["replacement"] == "openai/gpt-image-2.5-sunburst"


@pytest.mark.parametrize(
    ("requested", "model_id"),
    [
        ("openai/gpt-image-2", "openai/gpt-image-2"),
        ("gpt-image-2-2026-04-21", "openai/gpt-image-2"),
        ("local/canvas", "local/canvas"),
    ],
)
def test_model_by_id_or_snapshot(client: TestClient, requested: str, model_id: str) -> None:
    response = client.get(f"/v1/models/{requested}", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == model_id


@pytest.mark.parametrize("model_id", ["nope", "openai/nope", "local/sketch/extra"])
def test_unknown_model_is_a_404(client: TestClient, model_id: str) -> None:
    response = client.get(f"/v1/models/{model_id}", headers=AUTH)
    message = assert_error(response, 404, code="model_not_found", param="model")
    assert model_id in message


def test_openapi_documents_the_generation_request(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    operation = document["paths"][GENERATIONS]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][name]
    assert "prompt" in schema["properties"]
    assert "prompt" in schema["required"]
    assert {"model", "n", "size", "quality", "response_format"} <= set(schema["properties"])
    assert "/v1/models" in document["paths"]
    assert "/health" in document["paths"]
