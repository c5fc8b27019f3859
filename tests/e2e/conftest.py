"""The e2e stack: openai client -> gateway under uvicorn -> fake OpenAI upstream, on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.fake_openai import FakeOpenAI
from support.fakes import FakeClock
from support.servers import GatewayServer

UPSTREAM_KEY = "sk-upstream-test"
CLIENT_KEY = "sk-client-test"

MakeGateway = Callable[..., GatewayServer]


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything here talks to 127.0.0.1: a proxy from the environment must not get in between."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(expected_key=UPSTREAM_KEY) as fake:
        yield fake
    assert fake.handler_errors == []  # the fake itself never failed


@pytest.fixture
def make_gateway(tmp_path: Path, upstream: FakeOpenAI) -> Iterator[MakeGateway]:
    """Starts a gateway with the default e2e settings, overridden by keyword."""
    with contextlib.ExitStack() as stack:

        def make(**overrides: Any) -> GatewayServer:
            values: dict[str, Any] = {
                "openai_api_key": UPSTREAM_KEY,
                "openai_base_url": upstream.base_url,
                "api_keys": CLIENT_KEY,
                "local_storage_dir": tmp_path / "images",
                "url_signing_secret": "e2e-signing-secret",
            }
            values.update(overrides)
            # The catalog's shutdown dates are judged against a fixed day (2026-11-22), so the
            # suite does not start failing when gpt-image-1.5 is shut down on 2026-12-01.
            runtime = Runtime(Settings(**values), clock=FakeClock())
            return stack.enter_context(GatewayServer(create_app(runtime=runtime)))

        yield make


@pytest.fixture
def gateway(make_gateway: MakeGateway) -> GatewayServer:
    return make_gateway()


MakeClient = Callable[..., openai.OpenAI]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    with contextlib.ExitStack() as stack:

        def make(
            gateway: GatewayServer, *, api_key: str = CLIENT_KEY, max_retries: int = 0
        ) -> openai.OpenAI:
            client = openai.OpenAI(
                base_url=gateway.base_url + "/v1",
                api_key=api_key,
                max_retries=max_retries,
                timeout=20,
            )
            return stack.enter_context(client)

        yield make


@pytest.fixture
def oai(make_client: MakeClient, gateway: GatewayServer) -> openai.OpenAI:
    """The official client, as a user sets it up against the gateway, with retries off."""
    return make_client(gateway)
