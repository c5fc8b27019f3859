"""Fixtures of the Lambda layer, loaded with ``pytest_plugins = ["lambda_fixtures"]``.

Every test here calls the real ``imagegw.handler.handler`` the way the Lambda runtime does: a
parsed JSON event and a context object. The handler keeps its adapter in a module global and the
settings are cached, so each test starts from a cold process state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lambda_harness import DEV_API_KEY, FakeLambdaContext

import imagegw.handler
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
    monkeypatch.setattr(imagegw.handler, "_adapter", None)
    get_settings.cache_clear()
    yield imagegw.handler.handler
    adapter = imagegw.handler._adapter
    if adapter is not None:
        # Release what the process built (upstream clients, the loop Mangum set up) so tests
        # do not leak sockets into each other.
        loop = asyncio.get_event_loop()
        runtime = getattr(getattr(adapter.app, "state", None), "runtime", None)
        if runtime is not None:
            loop.run_until_complete(runtime.aclose())
        loop.close()
        asyncio.set_event_loop(None)
    get_settings.cache_clear()
