"""Fallback models: only when the first provably did nothing, only if nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import GENERATIONS, assert_error, bearer, client_for, write_key_file
from fastapi.testclient import TestClient

from imagegw.catalog import CatalogError, parse_catalog
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import (
    GatewayError,
    ProviderNotConfigured,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.settings import Settings
from imagegw.state.auth import FileKeyStore, KeyStore

from conftest import AUTH
from support.fakes import FakeClock, FakeProvider

COMMON: dict[str, Any] = {
    "n_max": 4,
    "sizes": ["1024x1024", "1536x1024"],
    "default_size": "1024x1024",
    "qualities": ["low", "high"],
    "output_formats": ["png", "jpeg"],
    "parameters": ["size", "quality", "output_format"],
}
CATALOG = {
    "models": [
        {
            "id": "primary/model",
            "provider": "primary",
            "upstream_model": "p",
            "fallbacks": ["narrow/model", "ignores/model", "backup/model"],
            **COMMON,
        },
        # Same capabilities: may serve.
        {"id": "backup/model", "provider": "backup", "upstream_model": "b", **COMMON},
        # Fewer sizes and n: serves only requests it can serve identically.
        {
            "id": "narrow/model",
            "provider": "narrow",
            "upstream_model": "n",
            **{**COMMON, "n_max": 1, "sizes": ["1024x1024"]},
        },
        # Would drop quality on the floor: never a fallback for a request that sets it.
        {
            "id": "ignores/model",
            "provider": "ignores",
            "upstream_model": "i",
            **{**COMMON, "ignored_parameters": ["quality"]},
        },
    ]
}
REQUEST = {
    "model": "primary/model",
    "prompt": "a lighthouse",
    "n": 2,
    "size": "1536x1024",
    "quality": "high",
}


class Providers:
    def __init__(self) -> None:
        self.primary = FakeProvider()
        self.backup = FakeProvider()
        self.narrow = FakeProvider()
        self.ignores = FakeProvider()

    def as_dict(self) -> dict[str, FakeProvider]:
        return {name: getattr(self, name) for name in ("primary", "backup", "narrow", "ignores")}


@pytest.fixture
def providers() -> Providers:
    return Providers()


def make_client(
    settings: Settings, clock: FakeClock, providers: Providers, key_store: KeyStore | None = None
) -> TestClient:
    single = settings.model_copy(update={"upstream_max_attempts": 1})
    runtime = Runtime(
        single,
        catalog=parse_catalog(CATALOG),
        key_store=key_store,
        providers=providers.as_dict(),  # type: ignore[arg-type]
        clock=clock,
    )
    return client_for(runtime).__enter__()


@pytest.fixture
def client(settings: Settings, clock: FakeClock, providers: Providers) -> Iterator[TestClient]:
    test_client = make_client(settings, clock, providers)
    yield test_client
    test_client.__exit__(None, None, None)


def failing(error: GatewayError) -> FakeProvider:
    return FakeProvider(error=error)


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("slow down", headers={"retry-after": "9"}),
        UpstreamUnreachable("could not connect"),
        ProviderNotConfigured("no key"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_model_that_did_nothing_is_replaced_and_the_response_says_so(
    settings: Settings, clock: FakeClock, providers: Providers, error: GatewayError
) -> None:
    providers.primary = failing(error)
    with make_client(settings, clock, providers) as client:
        response = client.post(GENERATIONS, json=REQUEST, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "backup/model"
    assert body["fallback_from"] == "primary/model"
    assert response.headers["x-imagegw-model"] == "backup/model"
    assert response.headers["x-imagegw-fallback-from"] == "primary/model"
    assert len(body["data"]) == 2
    sent = providers.backup.requests[0]
    assert (sent.n, sent.size, sent.upstream_model) == (2, "1536x1024", "b")
    # "narrow" cannot do n=2 at 1536x1024, "ignores" would ignore the quality: never asked.
    assert providers.narrow.requests == []
    assert providers.ignores.requests == []


@pytest.mark.parametrize(
    "error",
    [UpstreamTimeout("maybe generated"), UpstreamError("HTTP 500 after sending")],
    ids=lambda error: type(error).__name__,
)
def test_no_fallback_after_a_failure_that_may_have_billed(
    settings: Settings, clock: FakeClock, providers: Providers, error: GatewayError
) -> None:
    providers.primary = failing(error)
    with make_client(settings, clock, providers) as client:
        response = client.post(GENERATIONS, json=REQUEST, headers=AUTH)
    assert response.status_code == error.status
    assert providers.backup.requests == []


def test_the_first_equivalent_fallback_in_catalog_order_serves(
    settings: Settings, clock: FakeClock, providers: Providers
) -> None:
    providers.primary = failing(RateLimited("slow down"))
    with make_client(settings, clock, providers) as client:
        response = client.post(
            GENERATIONS, json={**REQUEST, "n": 1, "size": "1024x1024"}, headers=AUTH
        )
    assert response.json()["model"] == "narrow/model"
    assert providers.backup.requests == []


def test_a_fallback_that_would_ignore_a_parameter_is_skipped(
    settings: Settings, clock: FakeClock, providers: Providers
) -> None:
    providers.primary = failing(RateLimited("slow down"))
    providers.backup = failing(RateLimited("slow down too"))
    with make_client(settings, clock, providers) as client:
        response = client.post(GENERATIONS, json=REQUEST, headers=AUTH)
        assert response.status_code == 429
        assert providers.ignores.requests == []
        # A request that does not set quality loses nothing there: it may serve that one.
        without = {key: value for key, value in REQUEST.items() if key != "quality"}
        response = client.post(GENERATIONS, json=without, headers=AUTH)
    assert response.json()["model"] == "ignores/model"


def test_when_every_fallback_is_down_the_callers_model_error_is_returned(
    settings: Settings, clock: FakeClock, providers: Providers
) -> None:
    providers.primary = failing(RateLimited("primary says slow down", headers={"retry-after": "9"}))
    providers.backup = failing(UpstreamUnreachable("backup unreachable"))
    providers.ignores = failing(UpstreamUnreachable("ignores unreachable"))
    with make_client(settings, clock, providers) as client:
        response = client.post(GENERATIONS, json=REQUEST, headers=AUTH)
    assert_error(response, 429, code="rate_limit_exceeded", retry=True)
    assert response.headers["retry-after"] == "9"
    assert len(providers.backup.requests) == 1


def test_a_fallback_the_key_may_not_use_is_never_used(
    settings: Settings, clock: FakeClock, providers: Providers, tmp_path: Path
) -> None:
    keys = write_key_file(
        tmp_path / "keys.json",
        [
            {
                "name": "p-only",
                "key": "sk-p-only-0000000000000",
                "scopes": ["*"],
                "models": ["primary/*"],
            }
        ],
    )
    providers.primary = failing(RateLimited("slow down"))
    with make_client(settings, clock, providers, FileKeyStore(keys)) as client:
        response = client.post(GENERATIONS, json=REQUEST, headers=bearer("sk-p-only-0000000000000"))
    assert response.status_code == 429
    assert providers.backup.requests == []


def test_a_healthy_model_never_touches_its_fallbacks(
    client: TestClient, providers: Providers
) -> None:
    response = client.post(GENERATIONS, json=REQUEST, headers=AUTH)
    assert response.json()["model"] == "primary/model"
    assert "fallback_from" not in response.json()
    assert "x-imagegw-fallback-from" not in response.headers
    assert providers.backup.requests == []


@pytest.mark.parametrize("fallback", ["primary/model", "nowhere/model"])
def test_the_catalog_refuses_fallbacks_that_are_not_other_models(fallback: str) -> None:
    document = {"models": [{**CATALOG["models"][0], "fallbacks": [fallback]}]}
    with pytest.raises(CatalogError, match="fallback"):
        parse_catalog(document)
