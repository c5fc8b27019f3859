"""Service-account tokens: one fetch serves every request until google-auth says refresh.

The fake token endpoint verifies each JWT assertion against the public half of the test's key,
so a token only exists when google-auth signed the grant correctly, and the fake's Vertex
endpoints accept only tokens it issued and that have not expired on the shared clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from imagegw.errors import UpstreamAuthFailed, UpstreamUnreachable
from imagegw.providers import build_provider
from imagegw.providers.base import ImageProvider, ImageResult
from imagegw.settings import Settings

from support.fake_google import FakeGoogle, Raw, ServiceAccountKey, Token
from support.google_env import (
    MovableClock,
    google_request,
    move_google_auth_clock,
    service_account_key,
    vertex_config,
)

GEMINI = "google/gemini-3.1-flash-image"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    moving = MovableClock()
    move_google_auth_clock(monkeypatch, moving)
    return moving


@pytest.fixture
def google(clock: MovableClock) -> Iterator[FakeGoogle]:
    with FakeGoogle(service_account_key(), clock=clock) as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def _provider(google: FakeGoogle, http: httpx.AsyncClient, **config: Any) -> ImageProvider:
    return build_provider("google", vertex_config(google, **config), Settings(), http)


async def _ten(provider: ImageProvider) -> list[ImageResult]:
    return await asyncio.gather(*(provider.generate(google_request(GEMINI)) for _ in range(10)))


def _bearers(google: FakeGoogle) -> list[str | None]:
    return [call.header("authorization") for call in google.calls("generateContent")]


@pytest.mark.anyio
async def test_ten_concurrent_requests_cause_one_token_fetch(
    google: FakeGoogle, http: httpx.AsyncClient
) -> None:
    provider = _provider(google, http)
    results = await _ten(provider)
    assert all(len(result.images) == 1 for result in results)
    assert len(google.token_requests) == 1
    assert set(_bearers(google)) == {"Bearer ya29.fake-1"}
    # Ten more, one after the other: the token is reused.
    for _ in range(10):
        await provider.generate(google_request(GEMINI))
    assert len(google.token_requests) == 1
    assert len(google.calls("generateContent")) == 20
    await provider.aclose()


@pytest.mark.anyio
async def test_an_expired_token_causes_exactly_one_more_fetch(
    google: FakeGoogle, http: httpx.AsyncClient, clock: MovableClock
) -> None:
    provider = _provider(google, http)
    await _ten(provider)
    assert len(google.token_requests) == 1

    clock.advance(3000)  # ten minutes left: google-auth still calls it fresh
    await _ten(provider)
    assert len(google.token_requests) == 1

    clock.advance(700)  # past the token's 3599 s: the fake would refuse it now
    await _ten(provider)
    assert len(google.token_requests) == 2
    assert _bearers(google)[-10:] == ["Bearer ya29.fake-2"] * 10
    await provider.aclose()


@pytest.mark.anyio
async def test_a_token_inside_google_auths_refresh_margin_is_refreshed_once(
    google: FakeGoogle, http: httpx.AsyncClient, clock: MovableClock
) -> None:
    provider = _provider(google, http)
    await provider.generate(google_request(GEMINI))
    clock.advance(3599 - 60)  # still valid at Google, but within google-auth's 3 min 45 s
    await _ten(provider)
    assert len(google.token_requests) == 2
    await provider.aclose()


@pytest.mark.anyio
async def test_imagen_uses_the_same_token(google: FakeGoogle, http: httpx.AsyncClient) -> None:
    provider = _provider(google, http)
    await provider.generate(google_request(GEMINI))
    await provider.generate(google_request("google/imagen-4.0"))
    assert len(google.token_requests) == 1
    (predict,) = google.calls("predict")
    assert predict.header("authorization") == "Bearer ya29.fake-1"
    await provider.aclose()


@pytest.mark.anyio
async def test_the_token_request_is_a_signed_jwt_bearer_grant(
    google: FakeGoogle, http: httpx.AsyncClient
) -> None:
    await _provider(google, http).generate(google_request(GEMINI))
    (grant,) = google.token_requests
    assert grant.method == "POST"
    assert grant.header("content-type") == "application/x-www-form-urlencoded"
    form = dict(part.split("=", 1) for part in grant.body.decode().split("&"))
    assert form["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
    assert form["assertion"].count(".") == 2


@pytest.mark.anyio
async def test_a_key_google_does_not_know_is_an_upstream_auth_failure(
    google: FakeGoogle, http: httpx.AsyncClient
) -> None:
    stranger = ServiceAccountKey.generate()  # same email and key id, different private key
    config = {"service_account": stranger.info(token_uri=google.token_uri)}
    provider = _provider(google, http, **config)
    with pytest.raises(UpstreamAuthFailed) as caught:
        await provider.generate(google_request(GEMINI))
    assert caught.value.status == 502
    assert "Signature" not in caught.value.message
    assert google.calls("generateContent") == []  # nothing was sent without a token


@pytest.mark.anyio
async def test_a_refused_grant_is_not_retried_and_the_next_request_tries_again(
    google: FakeGoogle, http: httpx.AsyncClient
) -> None:
    google.enqueue("token", Raw(b'{"error": "invalid_grant"}', status=400), Token())
    provider = _provider(google, http)
    with pytest.raises(UpstreamAuthFailed):
        await provider.generate(google_request(GEMINI))
    assert len(google.token_requests) == 1
    result = await provider.generate(google_request(GEMINI))
    assert len(result.images) == 1
    assert len(google.token_requests) == 2


@pytest.mark.anyio
async def test_an_unreachable_token_endpoint_means_the_request_was_not_sent(
    google: FakeGoogle, http: httpx.AsyncClient, closed_port: int
) -> None:
    info = google.key.info(token_uri=f"http://127.0.0.1:{closed_port}/token")
    provider = _provider(google, http, service_account=info)
    with pytest.raises(UpstreamUnreachable) as caught:
        await provider.generate(google_request(GEMINI))
    assert caught.value.should_retry is True
    assert google.requests == []
