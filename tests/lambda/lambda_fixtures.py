"""Fixtures of the Lambda layer, loaded with ``pytest_plugins = ["lambda_fixtures"]``.

Every test here calls the real ``imagegw.entrypoints.handler.handler`` the way the Lambda runtime
does: a parsed JSON event and a context object. The handler keeps its adapter in a module global
and the settings are cached, so each test starts from a cold process state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lambda_harness import DEV_API_KEY, FakeLambdaContext

import imagegw.entrypoints.handler
import imagegw.entrypoints.worker
from imagegw.settings import get_settings


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def lambda_storage_dir(tmp_path: Path) -> Path:
    return tmp_path / "images"


@pytest.fixture
def cold_handler(
    monkeypatch: pytest.MonkeyPatch, lambda_storage_dir: Path
) -> Iterator[Callable[[Any, Any], dict[str, Any]]]:
    """The real handler as a fresh Lambda process sees it, configured by environment only."""
    monkeypatch.setenv("IMAGEGW_API_KEYS", DEV_API_KEY)
    monkeypatch.setenv("IMAGEGW_LOCAL_STORAGE_DIR", str(lambda_storage_dir))
    # What the Lambda runtime sets: the gateway behaves as it does deployed (no in-process
    # job tasks, metrics on).
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "imagegw-dev-GatewayFunction")
    monkeypatch.setattr(imagegw.entrypoints.handler, "_adapter", None)
    monkeypatch.setattr(imagegw.entrypoints.handler, "_entry", None)
    monkeypatch.setattr(imagegw.entrypoints.worker, "_runtime", None)
    monkeypatch.setattr(imagegw.entrypoints.worker, "_entry", None)
    get_settings.cache_clear()
    yield imagegw.entrypoints.handler.handler
    adapter = imagegw.entrypoints.handler._adapter
    runtimes = [imagegw.entrypoints.worker._runtime]
    if adapter is not None:
        runtimes.append(getattr(getattr(adapter.app, "state", None), "runtime", None))
    live = [runtime for runtime in runtimes if runtime is not None]
    if live:
        # Release what the process built (upstream clients, the loop Mangum set up) so tests
        # do not leak sockets into each other.
        loop = asyncio.get_event_loop()
        for runtime in live:
            loop.run_until_complete(runtime.aclose())
        loop.close()
        asyncio.set_event_loop(None)
    get_settings.cache_clear()
