"""Fixtures shared by every test layer.

Tests never read the developer's environment: IMAGEGW_*, OPENAI_*, GOOGLE_*, GEMINI_* and BFL_*
variables are removed, and each test builds the Settings it needs.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.logs import configure_logging
from imagegw.settings import Settings, get_settings

from support.fakes import FakeClock, FakeProvider
from support.leaks import LeakWatch, formatted

# No secret, key, signature or image bytes in any log line of the run (support/log_guard.py).
pytest_plugins = ["support.log_guard"]

API_KEY = "sk-test-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

_LAYERS = ("unit", "providers", "api", "aws", "lambda", "e2e", "deploy")


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
        if name.startswith(("IMAGEGW_", "OPENAI_", "GOOGLE_", "GEMINI_", "BFL_")):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


AWS_REGION = "eu-west-1"


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake AWS credentials and a real Region; nothing from the developer's AWS setup.

    Every AWS_* variable is removed first (a profile, an endpoint override or real keys must not
    reach a test), config files point at nothing, and instance metadata is never asked.
    """
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def mocked_aws(aws_environment: None) -> Iterator[None]:
    """moto's in-process AWS. Clients must be created inside (the gateway creates them lazily)."""
    from moto import mock_aws

    mock: Any = mock_aws()
    with mock:
        yield


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens (held bound so no one else takes it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


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


@pytest.fixture
def leak_watch(caplog: pytest.LogCaptureFixture) -> Iterator[LeakWatch]:
    """Every log record of the test, root logger at DEBUG, is scanned for what it registers.

    The gateway's logging is configured first, as ``create_app`` does before anything else runs
    in a process.
    """
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    watch = LeakWatch()
    yield watch
    # With the teardown so far: a server thread may log after the call phase has ended (the
    # access log line follows the response), and servers stop before this fixture ends.
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    # Not vacuous: the test registered something and the gateway did log.
    assert watch.watched > 0
    assert any(record.name.startswith("imagegw") for record in records)
    watch.assert_clean(formatted(records))
