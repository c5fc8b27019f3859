"""Helpers for tests that talk to the fake Google: the test's key, a movable clock, configs."""

from __future__ import annotations

import datetime as dt
import time
from functools import lru_cache
from typing import Any

import pytest

from imagegw.catalog import Catalog, load_catalog
from imagegw.providers.base import ImageRequest

from support.fake_google import FakeGoogle, ServiceAccountKey


@lru_cache(maxsize=1)
def service_account_key() -> ServiceAccountKey:
    """One RSA key per test run: generating 2048-bit keys is the slow part."""
    return ServiceAccountKey.generate()


class MovableClock:
    """Wall-clock time that a test can move forward (token lifetimes without waiting)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def move_google_auth_clock(monkeypatch: pytest.MonkeyPatch, clock: MovableClock) -> None:
    """google-auth reads the time through ``_helpers.utcnow`` (naive UTC), as freezegun patches."""
    from google.auth import _helpers

    monkeypatch.setattr(
        _helpers,
        "utcnow",
        lambda: dt.datetime.fromtimestamp(clock(), tz=dt.UTC).replace(tzinfo=None),
    )


def vertex_config(google: FakeGoogle, **overrides: Any) -> dict[str, Any]:
    """The provider config of a deployment with a service account (the provider secret's shape)."""
    return {
        "service_account": google.key.info(token_uri=google.token_uri),
        "vertex_base_url": google.origin,
        **overrides,
    }


def api_key_config(google: FakeGoogle, **overrides: Any) -> dict[str, Any]:
    return {"api_key": google.api_key, "gemini_base_url": google.origin, **overrides}


@lru_cache(maxsize=1)
def _catalog() -> Catalog:
    return load_catalog()


def google_request(
    model_id: str, *, prompt: str = "a lighthouse at dusk", n: int = 1, **params: Any
) -> ImageRequest:
    """An ``ImageRequest`` for a packaged catalog model, as validation builds it.

    Built from the model's entry directly: whether the model is past its shutdown date is the
    catalog's business (tested there), and the Imagen contract is tested as it was before it.
    """
    spec = _catalog().get(model_id)
    assert spec is not None, model_id
    return ImageRequest(
        spec=spec,
        upstream_model=spec.upstream_model,
        prompt=prompt,
        n=n,
        timeout_seconds=params.pop("timeout_seconds", 10.0),
        **params,
    )
