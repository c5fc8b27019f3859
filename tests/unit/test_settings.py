"""Settings from the environment: the variable names, their precedence, and validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from imagegw.settings import Settings

pytestmark = pytest.mark.unit


def test_prefixed_variables_set_fields_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGW_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("imagegw_max_body_bytes", "4096")
    settings = Settings()
    assert settings.log_level == "DEBUG"
    assert settings.max_body_bytes == 4096


def test_unset_fields_keep_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGEGW_STORAGE", raising=False)
    monkeypatch.delenv("IMAGEGW_METRICS", raising=False)
    settings = Settings()
    assert settings.storage == "local"
    assert settings.metrics is None


def test_the_prefixed_name_wins_over_the_tools_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGEGW_OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-plain")
    plain = Settings().openai_api_key
    assert plain is not None
    assert plain.get_secret_value() == "sk-plain"
    monkeypatch.setenv("IMAGEGW_OPENAI_API_KEY", "sk-prefixed")
    key = Settings().openai_api_key
    assert key is not None
    assert key.get_secret_value() == "sk-prefixed"


def test_an_unprefixed_name_without_an_alias_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGEGW_LOG_LEVEL", raising=False)
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    assert Settings().log_level == "INFO"


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEGW_LOG_LEVEL", "ERROR")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://from-env")
    settings = Settings(log_level="WARNING", openai_base_url="http://from-kwargs")
    assert settings.log_level == "WARNING"
    assert settings.openai_base_url == "http://from-kwargs"


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("IMAGEGW_SECRET_TTL_SECONDS", "-1", "secret_ttl_seconds"),
        ("IMAGEGW_STORAGE", "gcs", "storage"),
        ("IMAGEGW_TRACING", "maybe", "tracing"),
        ("IMAGEGW_URL_TTL_SECONDS", "ten", "url_ttl_seconds"),
    ],
)
def test_invalid_values_from_the_environment_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert caught.value.title == "Settings"
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


def test_environment_strings_are_converted_as_pydantic_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAGEGW_METRICS", "false")
    monkeypatch.setenv("IMAGEGW_TRACING", "1")
    monkeypatch.setenv("IMAGEGW_UPSTREAM_TIMEOUT_SECONDS", "12.5")
    settings = Settings()
    assert settings.metrics is False
    assert settings.tracing is True
    assert settings.upstream_timeout_seconds == 12.5


def test_an_empty_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # CloudFormation and `sam local --env-vars` can only empty a variable, not remove it.
    monkeypatch.setenv("IMAGEGW_JOBS_TABLE", "")
    monkeypatch.setenv("IMAGEGW_API_KEYS", "")
    monkeypatch.setenv("IMAGEGW_OPENAI_API_KEY", "")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-tools-name")
    settings = Settings()
    assert settings.jobs_table is None
    assert settings.api_keys is None
    key = settings.openai_api_key
    assert key is not None
    assert key.get_secret_value() == "sk-from-the-tools-name"
