"""The allowed fetch of an image_url: pinned to the checked address, no redirects, bounded.

Nothing here leaves the process: the transport is httpx.MockTransport, and the "public" address
is only data handed to it (no connection is ever made to it).
"""

from __future__ import annotations

import httpx
import pytest

from imagegw.errors import ForbiddenImageUrl, InvalidImage, PayloadTooLarge
from imagegw.generation.remote_images import FetchLimits, Resolver, fetch_public_image

from support.edit_images import solid

PUBLIC = "93.184.215.14"  # never contacted: the MockTransport answers


async def _public_resolver(host: str, port: int) -> list[str]:
    assert (host, port) == ("images.example.test", 443)
    return [PUBLIC]


async def _mixed_resolver(host: str, port: int) -> list[str]:
    return [PUBLIC, "127.0.0.1"]  # one loopback answer is enough to refuse


async def _fetch(
    handler: httpx.MockTransport, url: str, *, resolver: Resolver = _public_resolver
) -> bytes:
    async with httpx.AsyncClient(transport=handler) as http:
        return await fetch_public_image(
            http, url, param="images[0]", limits=FetchLimits(max_bytes=10_000), resolver=resolver
        )


@pytest.mark.anyio
async def test_the_connection_goes_to_the_checked_address_with_the_hosts_name() -> None:
    seen: list[httpx.Request] = []
    image = solid()

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=image)

    data = await _fetch(httpx.MockTransport(answer), "https://images.example.test/a/cat.png?v=1")

    assert data == image
    (request,) = seen
    assert request.url.host == PUBLIC
    assert request.url.path == "/a/cat.png"
    assert request.url.query == b"v=1"
    assert request.headers["host"] == "images.example.test"
    assert request.extensions["sni_hostname"] == "images.example.test"


@pytest.mark.anyio
async def test_a_host_with_any_loopback_answer_is_refused_before_a_request() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be made")

    with pytest.raises(ForbiddenImageUrl):
        await _fetch(
            httpx.MockTransport(answer),
            "https://images.example.test/cat.png",
            resolver=_mixed_resolver,
        )


@pytest.mark.anyio
async def test_redirects_are_not_followed() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "https://127.0.0.1/cat.png"})

    with pytest.raises(ForbiddenImageUrl, match="redirects"):
        await _fetch(httpx.MockTransport(answer), "https://images.example.test/cat.png")


@pytest.mark.anyio
async def test_an_error_status_and_an_oversized_body_are_refused() -> None:
    def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 20_000)

    with pytest.raises(InvalidImage) as caught:
        await _fetch(httpx.MockTransport(missing), "https://images.example.test/cat.png")
    assert caught.value.code == "image_url_unreachable"
    with pytest.raises(PayloadTooLarge):
        await _fetch(httpx.MockTransport(endless), "https://images.example.test/cat.png")
