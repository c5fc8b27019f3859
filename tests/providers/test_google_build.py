"""The google config (environment, provider secret) to a provider, or the 503 saying what to set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegw.aws.credentials import environment_config
from imagegw.errors import ProviderNotConfigured
from imagegw.providers import build_provider
from imagegw.providers.google import GoogleProvider
from imagegw.settings import Settings

from support.fake_google import FakeGoogle
from support.google_env import google_request, service_account_key

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(service_account_key()) as fake:
        yield fake


def _build(config: dict[str, Any]) -> GoogleProvider:
    provider = build_provider("google", config, Settings(), httpx.AsyncClient())
    assert isinstance(provider, GoogleProvider)
    return provider


def _refusal(config: dict[str, Any]) -> ProviderNotConfigured:
    with pytest.raises(ProviderNotConfigured) as caught:
        _build(config)
    assert caught.value.status == 503
    return caught.value


def test_nothing_configured_names_both_ways_to_configure() -> None:
    message = _refusal({}).message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message
    assert "GEMINI_API_KEY" in message
    assert "provider secret" in message


def test_service_account_as_a_json_string_from_the_secret(google: FakeGoogle) -> None:
    info = google.key.info(token_uri=google.token_uri)
    _build({"service_account": json.dumps(info)})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"type": "service_account", "private_key": "-----BEGIN', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "authorized_user"}', "not a service-account key"),
        ('{"type": "service_account", "client_email": "a@b"}', "private_key, token_uri"),
    ],
)
def test_unusable_service_account_is_refused_without_echoing_it(value: str, expected: str) -> None:
    message = _refusal({"service_account": value, "project": "p"}).message
    assert expected in message
    assert "BEGIN" not in message


def test_an_unreadable_private_key_is_refused_without_echoing_it(google: FakeGoogle) -> None:
    info = google.key.info(token_uri=google.token_uri)
    info["private_key"] = (
        "-----BEGIN PRIVATE KEY-----\nTOP-SECRET-MATERIAL\n-----END PRIVATE KEY-----\n"
    )
    message = _refusal({"service_account": info}).message
    assert "private_key" in message
    assert "TOP-SECRET-MATERIAL" not in message


def test_project_defaults_to_the_keys_and_is_required(google: FakeGoogle) -> None:
    info = google.key.info(token_uri=google.token_uri)
    del info["project_id"]
    message = _refusal({"service_account": info}).message
    assert "GOOGLE_CLOUD_PROJECT" in message


@pytest.mark.parametrize(
    "field", [{"project": "a/../b"}, {"location": "us central"}, {"gemini_location": "x?y"}]
)
def test_names_that_go_into_urls_are_checked(google: FakeGoogle, field: dict[str, str]) -> None:
    _refusal({"service_account": google.key.info(token_uri=google.token_uri), **field})


@pytest.mark.anyio
async def test_the_environment_variables_configure_vertex(
    google: FakeGoogle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(google.key.info(token_uri=google.token_uri)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    monkeypatch.setenv("IMAGEGW_GOOGLE_VERTEX_BASE_URL", google.origin)
    settings = Settings()
    async with httpx.AsyncClient() as http:
        provider = build_provider("google", environment_config(settings, "google"), settings, http)
        result = await provider.generate(google_request("google/imagen-4.0"))
        await provider.aclose()
    assert len(result.images) == 1
    (sent,) = google.calls("predict")
    assert sent.path.startswith("/v1/projects/imagegw-test/locations/europe-west4/")


def test_a_missing_key_file_names_the_variable(tmp_path: Path) -> None:
    message = _refusal({"service_account_file": str(tmp_path / "nope.json")}).message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message


_PROBE = """
import sys
import httpx
from imagegw.providers import build_provider
from imagegw.settings import Settings
build_provider("google", {"api_key": "k"}, Settings(), httpx.AsyncClient())
print(sorted(name for name in sys.modules if name == "google" or name.startswith("google.")))
"""


def test_a_gemini_api_key_deployment_never_imports_google_auth() -> None:
    environment = {
        "PYTHONPATH": str(REPO / "functions" / "gateway"),
        "PATH": os.environ.get("PATH", ""),
    }
    finished = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert finished.stdout.strip() == "[]"
