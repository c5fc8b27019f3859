"""Fixtures shared by every test layer.

Tests never read the developer's environment: IMAGEGW_* and OPENAI_* variables are removed, and
each test builds the Settings it needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from imagegw.app import create_app
from imagegw.runtime import Runtime
from imagegw.settings import Settings, get_settings

from support.fakes import FakeClock, FakeProvider

# No secret, key, signature or image bytes in any log line of the run (support/log_guard.py).
pytest_plugins = ["support.log_guard"]

API_KEY = "sk-test-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

_LAYERS = ("unit", "providers", "api", "aws", "lambda", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries the marker of its folder, so `pytest -m api` selects a layer."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for layer in _LAYERS:
            if layer in parts:
                item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("IMAGEGW_", "OPENAI_")):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        api_keys=API_KEY,
        local_storage_dir=tmp_path / "images",
        url_signing_secret="test-signing-secret",
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def runtime(settings: Settings, clock: FakeClock, fake_provider: FakeProvider) -> Runtime:
    """A runtime whose 'openai' provider is the in-process fake."""
    return Runtime(settings, providers={"openai": fake_provider}, clock=clock)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime)) as test_client:
        yield test_client
