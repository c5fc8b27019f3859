"""Configuring BFL as an operator does: environment variables, or the provider secret (moto).

Judged by what the fake BFL receives (the ``x-key`` header, the host it is called on) and by
what the caller sees, never by the provider's internals.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api.api_support import GENERATIONS, assert_error
from fastapi.testclient import TestClient

from imagegw.aws.credentials import environment_config
from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from conftest import API_KEY, AUTH
from support.aws import create_secret
from support.fake_bfl import FakeBfl
from support.fakes import FakeClock
from support.leaks import LeakWatch

SECRET_KEY = "bfl_from_the_secret_0123"
ENV_KEY = "bfl_from_the_environment_4567"
REQUEST = {"model": "bfl/flux-2-klein-4b", "prompt": "a harbour at dawn"}


@pytest.fixture
def bfl(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBfl]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with FakeBfl(api_key=SECRET_KEY) as fake:
        yield fake
    assert fake.handler_errors == []


def _client(**settings: object) -> TestClient:
    runtime = Runtime(
        Settings(api_keys=API_KEY, bfl_poll_seconds=0.02, **settings), clock=FakeClock()
    )
    return TestClient(create_app(runtime=runtime))


def test_the_environment_names_a_user_knows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFL_API_KEY", ENV_KEY)
    monkeypatch.setenv("BFL_BASE_URL", "https://bfl-proxy.example")
    monkeypatch.setenv("IMAGEGW_BFL_REGION", "eu")
    config = environment_config(Settings(), "bfl")
    assert config == {
        "api_key": ENV_KEY,
        "base_url": "https://bfl-proxy.example",
        "region": "eu",
    }
    monkeypatch.delenv("BFL_API_KEY")
    assert "api_key" not in environment_config(Settings(), "bfl")


def test_the_secrets_bfl_entry_wins_over_the_environment(
    mocked_aws: None, bfl: FakeBfl, leak_watch: LeakWatch
) -> None:
    leak_watch.secret(SECRET_KEY, ENV_KEY)
    create_secret(
        "imagegw/test/providers", {"bfl": {"api_key": SECRET_KEY, "base_url": bfl.origin}}
    )
    with _client(provider_secret_id="imagegw/test/providers", bfl_api_key=ENV_KEY) as client:
        response = client.post(GENERATIONS, json=REQUEST, headers=AUTH)
    assert response.status_code == 200, response.text
    assert [submit.header("x-key") for submit in bfl.submits()] == [SECRET_KEY]
    assert [poll.header("x-key") for poll in bfl.polls()] == [SECRET_KEY] * len(bfl.polls())


def test_a_wrong_key_is_the_gateways_problem_not_the_callers(bfl: FakeBfl) -> None:
    with _client(bfl_api_key=ENV_KEY, bfl_base_url=bfl.origin) as client:
        response = client.post(GENERATIONS, json=REQUEST, headers=AUTH)
    assert_error(response, 502, code="upstream_auth_failed")
    assert ENV_KEY not in response.text


def test_an_unknown_region_in_the_secret_is_a_503_naming_the_choices(mocked_aws: None) -> None:
    create_secret("imagegw/test/providers", {"bfl": {"api_key": SECRET_KEY, "region": "mars"}})
    with _client(provider_secret_id="imagegw/test/providers") as client:
        response = client.post(GENERATIONS, json=REQUEST, headers=AUTH)
    message = assert_error(response, 503, code="provider_not_configured")
    assert "global, eu, us" in message
