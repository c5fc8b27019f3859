"""Provider credentials and client keys from Secrets Manager (moto), as callers see them.

Rotation, outages and broken secrets are judged by what reaches the caller (status, error
envelope, message) and by the Authorization header the fake OpenAI upstream receives. The
secrets are read through the real botocore path. Tests that move time build the runtime's
``CachedSecret``s with a ``FakeClock``; the others configure the gateway by settings alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api.api_support import GENERATIONS, assert_error, bearer, client_for
from fastapi.testclient import TestClient

from imagegw.aws.credentials import SecretCredentials
from imagegw.aws.secrets_cache import CachedSecret, Fetch, secretsmanager_fetch
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings
from imagegw.state.auth import SecretKeyStore, hash_key

from conftest import API_KEY, AUTH
from support.aws import OutageSwitch, create_secret, put_secret
from support.fake_openai import FakeOpenAI
from support.fakes import FakeClock
from support.leaks import LeakWatch

PROVIDER_SECRET = "imagegw/test/providers"
KEYS_SECRET = "imagegw/test/client-keys"
OLD_UPSTREAM = "sk-upstream-old-0000000000"
NEW_UPSTREAM = "sk-upstream-new-1111111111"
ENV_UPSTREAM = "sk-upstream-env-2222222222"
KEY_A = "sk-imagegw-client-a-aaaaaaaaaaaa"
KEY_B = "sk-imagegw-client-b-bbbbbbbbbbbb"
TTL = 300.0
GRACE = 900.0

GENERATION = {"model": "openai/gpt-image-2", "prompt": "a harbour at dawn", "size": "1024x1024"}


def keys_document(*keys: tuple[str, str]) -> dict[str, Any]:
    return {
        "keys": [
            {"name": name, "sha256": hash_key(key), "scopes": ["images:generate", "models:read"]}
            for name, key in keys
        ]
    }


def openai_entry(upstream: FakeOpenAI, api_key: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"base_url": upstream.base_url}
    if api_key is not None:
        entry["api_key"] = api_key
    return {"openai": entry}


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def secret_clock() -> FakeClock:
    """The clock the secret caches judge their age by (monotonic in production)."""
    return FakeClock(10_000.0)


def timed_runtime(
    clock: FakeClock,
    *,
    provider_fetch: Fetch | None = None,
    keys_fetch: Fetch | None = None,
    **overrides: Any,
) -> Runtime:
    """A runtime whose secrets are cached on ``clock``, read by ``*_fetch`` (real botocore)."""
    values: dict[str, Any] = {"log_level": "DEBUG", "api_keys": API_KEY}
    values.update(overrides)
    settings = Settings(**values)

    def cache(fetch: Fetch, role: str) -> CachedSecret:
        return CachedSecret(fetch, role=role, ttl_seconds=TTL, grace_seconds=GRACE, clock=clock)

    credentials = None
    if provider_fetch is not None:
        credentials = SecretCredentials(cache(provider_fetch, "provider secret"), settings)
    key_store = None
    if keys_fetch is not None:
        key_store = SecretKeyStore(cache(keys_fetch, "client keys secret"))
    # The catalog's dates are judged on the wall clock's fixed day, as everywhere in the suite.
    return Runtime(settings, credentials=credentials, key_store=key_store, clock=FakeClock())


def configured_runtime(**overrides: Any) -> Runtime:
    """A runtime configured by settings alone, as a deployed process is."""
    values: dict[str, Any] = {"log_level": "DEBUG"}
    values.update(overrides)
    return Runtime(Settings(**values), clock=FakeClock())


def generate(client: TestClient, key: str = API_KEY) -> Any:
    return client.post(GENERATIONS, json=GENERATION, headers=bearer(key))


def upstream_key(upstream: FakeOpenAI) -> str | None:
    return upstream.requests[-1].header("authorization")


# ---------------------------------------------------------------- rotation


def test_a_rotated_provider_key_is_used_after_the_ttl_and_not_before(
    mocked_aws: None, upstream: FakeOpenAI, secret_clock: FakeClock, leak_watch: LeakWatch
) -> None:
    leak_watch.secret(OLD_UPSTREAM, NEW_UPSTREAM, API_KEY)
    create_secret(PROVIDER_SECRET, openai_entry(upstream, OLD_UPSTREAM))
    runtime = timed_runtime(secret_clock, provider_fetch=secretsmanager_fetch(PROVIDER_SECRET))
    with client_for(runtime) as client:
        assert generate(client).status_code == 200
        assert upstream_key(upstream) == f"Bearer {OLD_UPSTREAM}"

        put_secret(PROVIDER_SECRET, openai_entry(upstream, NEW_UPSTREAM))
        secret_clock.now += TTL - 1
        assert generate(client).status_code == 200
        assert upstream_key(upstream) == f"Bearer {OLD_UPSTREAM}"

        secret_clock.now += 1
        response = generate(client)
        assert response.status_code == 200, response.text
        assert upstream_key(upstream) == f"Bearer {NEW_UPSTREAM}"
        assert len(upstream.requests) == 3


def test_client_keys_added_and_revoked_in_the_secret_take_effect_after_the_ttl(
    mocked_aws: None, secret_clock: FakeClock, leak_watch: LeakWatch
) -> None:
    leak_watch.secret(KEY_A, KEY_B)
    create_secret(KEYS_SECRET, keys_document(("team-a", KEY_A)))
    runtime = timed_runtime(
        secret_clock, keys_fetch=secretsmanager_fetch(KEYS_SECRET), api_keys=None
    )
    with client_for(runtime) as client:

        def models(key: str) -> Any:
            return client.get("/v1/models", headers=bearer(key))

        assert models(KEY_A).status_code == 200
        assert_error(models(KEY_B), 401, code="invalid_api_key")

        put_secret(KEYS_SECRET, keys_document(("team-a", KEY_A), ("team-b", KEY_B)))
        secret_clock.now += TTL - 1
        assert_error(models(KEY_B), 401, code="invalid_api_key")
        secret_clock.now += 1
        assert models(KEY_B).status_code == 200

        put_secret(KEYS_SECRET, keys_document(("team-b", KEY_B)))  # team-a revoked
        secret_clock.now += TTL - 1
        assert models(KEY_A).status_code == 200
        secret_clock.now += 1
        message = assert_error(models(KEY_A), 401, code="invalid_api_key")
        assert KEY_A not in message
        assert models(KEY_B).status_code == 200


# ---------------------------------------------------------------- outages


def test_an_outage_serves_the_cached_secrets_within_grace_then_503(
    mocked_aws: None,
    upstream: FakeOpenAI,
    secret_clock: FakeClock,
    closed_port: int,
    leak_watch: LeakWatch,
) -> None:
    leak_watch.secret(OLD_UPSTREAM, KEY_A)
    create_secret(PROVIDER_SECRET, openai_entry(upstream, OLD_UPSTREAM))
    create_secret(KEYS_SECRET, keys_document(("team-a", KEY_A)))
    providers = OutageSwitch(PROVIDER_SECRET, closed_port)
    keys = OutageSwitch(KEYS_SECRET, closed_port)
    runtime = timed_runtime(secret_clock, provider_fetch=providers, keys_fetch=keys, api_keys=None)
    with client_for(runtime) as client:
        assert generate(client, KEY_A).status_code == 200
        providers.down = keys.down = True

        for step in (TTL, GRACE - 1):  # past the TTL, then the last second of grace
            secret_clock.now += step
            response = generate(client, KEY_A)
            assert response.status_code == 200, response.text
            assert upstream_key(upstream) == f"Bearer {OLD_UPSTREAM}"

        secret_clock.now += 1  # TTL + GRACE after the last successful read
        first = assert_error(generate(client, KEY_A), 503, code="secret_unavailable", retry=True)
        assert "client keys secret" in first
        for text in (OLD_UPSTREAM, KEY_A, hash_key(KEY_A)):
            assert text not in first

        # Back up: the next attempt (after the retry interval) reads the secrets again.
        providers.down = keys.down = False
        secret_clock.now += 10
        assert generate(client, KEY_A).status_code == 200


def test_an_unreachable_secrets_manager_without_a_value_is_a_503_naming_the_secret(
    aws_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    closed_port: int,
    leak_watch: LeakWatch,
) -> None:
    leak_watch.secret(ENV_UPSTREAM, API_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{closed_port}")
    runtime = configured_runtime(
        api_keys=API_KEY, provider_secret_id=PROVIDER_SECRET, openai_api_key=ENV_UPSTREAM
    )
    with client_for(runtime) as client:
        response = generate(client)
    # Read before any upstream call: nothing was billed, so clients may retry.
    message = assert_error(response, 503, code="secret_unavailable", retry=True)
    assert "provider credentials secret (IMAGEGW_PROVIDER_SECRET_ID)" in message
    assert ENV_UPSTREAM not in message
    assert API_KEY not in message

    runtime = configured_runtime(client_keys_secret_id=KEYS_SECRET)
    with client_for(runtime) as client:
        response = client.get("/v1/models", headers=AUTH)
    # Not a 401: the key may well be valid, the gateway just cannot tell.
    message = assert_error(response, 503, code="secret_unavailable", retry=True)
    assert "client keys secret (IMAGEGW_CLIENT_KEYS_SECRET_ID)" in message


# ---------------------------------------------------------------- contents


def test_secrets_configured_by_settings_authenticate_and_reach_the_upstream(
    mocked_aws: None, upstream: FakeOpenAI, leak_watch: LeakWatch
) -> None:
    leak_watch.secret(NEW_UPSTREAM, ENV_UPSTREAM, KEY_B)
    create_secret(PROVIDER_SECRET, openai_entry(upstream, NEW_UPSTREAM))
    arn = create_secret(KEYS_SECRET, keys_document(("team-b", KEY_B)))
    runtime = configured_runtime(
        provider_secret_id=PROVIDER_SECRET,
        client_keys_secret_id=arn,  # a name or an ARN
        openai_api_key=ENV_UPSTREAM,  # the secret's entry wins over the environment
    )
    with client_for(runtime) as client:
        response = generate(client, KEY_B)
        assert response.status_code == 200, response.text
        assert upstream_key(upstream) == f"Bearer {NEW_UPSTREAM}"
        assert_error(generate(client, API_KEY), 401, code="invalid_api_key")


def test_a_secret_without_an_openai_entry_falls_back_to_the_environment(
    mocked_aws: None, upstream: FakeOpenAI
) -> None:
    create_secret(PROVIDER_SECRET, {"google": {"project": "p", "location": "us-central1"}})
    runtime = configured_runtime(
        api_keys=API_KEY,
        provider_secret_id=PROVIDER_SECRET,
        openai_api_key=ENV_UPSTREAM,
        openai_base_url=upstream.base_url,
    )
    with client_for(runtime) as client:
        assert generate(client).status_code == 200
    assert upstream_key(upstream) == f"Bearer {ENV_UPSTREAM}"


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"google": {"project": "p"}}, id="no-openai-entry"),
        pytest.param({"openai": {"base_url": "https://example.invalid/v1"}}, id="no-api-key"),
        pytest.param({"openai": {"api_key": ""}}, id="empty-api-key"),
    ],
)
def test_a_missing_provider_entry_is_a_503_naming_what_is_missing(
    mocked_aws: None, upstream: FakeOpenAI, document: dict[str, Any]
) -> None:
    create_secret(PROVIDER_SECRET, document)
    runtime = configured_runtime(api_keys=API_KEY, provider_secret_id=PROVIDER_SECRET)
    with client_for(runtime) as client:
        message = assert_error(generate(client), 503, code="provider_not_configured")
    assert "'openai'" in message
    assert "'api_key'" in message
    assert "provider secret" in message
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("secret", "stored", "code"),
    [
        pytest.param(PROVIDER_SECRET, '{"openai": {"api_key": "sk-half', "secret_unavailable"),
        pytest.param(PROVIDER_SECRET, '["sk-half-written"]', "secret_unavailable"),
        pytest.param(KEYS_SECRET, '{"keys": [{"name": "x", "sk-half', "secret_unavailable"),
        pytest.param(KEYS_SECRET, '{"users": ["sk-half-written"]}', "key_store_unavailable"),
    ],
    ids=["provider-not-json", "provider-array", "keys-not-json", "keys-wrong-layout"],
)
def test_a_malformed_secret_is_a_503_naming_the_secret_and_quoting_none_of_it(
    mocked_aws: None, secret: str, stored: str, code: str
) -> None:
    create_secret(secret, stored)
    if secret == PROVIDER_SECRET:
        runtime = configured_runtime(api_keys=API_KEY, provider_secret_id=secret)
        variable = "IMAGEGW_PROVIDER_SECRET_ID"
    else:
        runtime = configured_runtime(client_keys_secret_id=secret)
        variable = "IMAGEGW_CLIENT_KEYS_SECRET_ID"
    with client_for(runtime) as client:
        # secret_unavailable: read before any upstream call, so x-should-retry is true.
        message = assert_error(generate(client), 503, code=code, retry=code == "secret_unavailable")
    assert variable in message
    assert "sk-half" not in message
