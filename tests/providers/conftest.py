"""Fixtures of the providers layer: the real catalog, requests built from it, fake upstreams."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from imagegw.catalog import Catalog, load_catalog
from imagegw.providers.base import ImageRequest

from support.fake_openai import FakeOpenAI

UPSTREAM_KEY = "sk-upstream-test"
# The day the catalog's shutdown dates are judged against in this layer.
TODAY = dt.date(2026, 11, 22)

MakeRequest = Callable[..., ImageRequest]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def make_request(catalog: Catalog) -> MakeRequest:
    """An ``ImageRequest`` for a catalog model, as validation would build it."""

    def make(
        model: str = "openai/gpt-image-1.5",
        *,
        prompt: str = "a lighthouse at dusk",
        n: int = 1,
        timeout_seconds: float = 10.0,
        **params: Any,
    ) -> ImageRequest:
        resolution = catalog.resolve(model, TODAY)
        return ImageRequest(
            spec=resolution.spec,
            upstream_model=resolution.upstream_model,
            prompt=prompt,
            n=n,
            timeout_seconds=timeout_seconds,
            **params,
        )

    return make


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
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens (held bound so no one else takes it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()
