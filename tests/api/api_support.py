"""Helpers shared by the api layer: the error envelope check and clients over custom runtimes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.state.auth import hash_key

GENERATIONS = "/v1/images/generations"
ENVELOPE_KEYS = {"message", "type", "param", "code"}


def assert_error(
    response: httpx.Response,
    status: int,
    *,
    code: str | None,
    param: str | None = None,
    error_type: str | None = None,
    retry: bool = False,
) -> str:
    """Check the OpenAI error envelope and the headers every error carries; return the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ENVELOPE_KEYS, error
    assert error["code"] == code, error
    assert error["param"] == param, error
    if error_type is not None:
        assert error["type"] == error_type, error
    assert isinstance(error["type"], str)
    assert error["type"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["x-should-retry"] == ("true" if retry else "false")
    message: str = error["message"]
    return message


@contextmanager
def client_for(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime)) as client:
        yield client


def write_key_file(path: Path, entries: list[dict[str, Any]]) -> Path:
    """A key file as operators write it: names, SHA-256 of each key, scopes, optional models."""
    keys = [
        {key: value for key, value in entry.items() if key != "key"}
        | {"sha256": hash_key(entry["key"])}
        for entry in entries
    ]
    path.write_text(json.dumps({"keys": keys}), encoding="utf-8")
    return path


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
