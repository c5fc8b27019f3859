"""Fetching an ``image_url`` from elsewhere on the internet, without becoming an SSRF proxy.

Off unless ``IMAGEGW_EDIT_FETCH_HTTPS_URLS`` is set: by default an edit takes uploaded bytes,
``data:`` URLs, ``file_id``s and the gateway's own links, all read without a request. When it is
on, a URL is fetched only if

- its scheme is ``https`` and it carries no user name or password;
- every address its host resolves to is a public (globally routable) unicast address: loopback,
  private, link-local (the cloud metadata service), shared, multicast and reserved ranges are
  refused, and so are IPv6 forms that embed an IPv4 address;
- the connection goes to the very address that was checked (the URL's host is kept for TLS
  verification and ``Host``), so a DNS answer that changes between check and use (rebinding)
  changes nothing;
- it answers 200 without a redirect (a redirect would be a new, unchecked URL), within the
  time and byte limits.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from imagegw.errors import ForbiddenImageUrl, InvalidImage, PayloadTooLarge
from imagegw.fastpath.http_pool import ACCEPT_ENCODING, iter_body

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    timeout_seconds: float = 10.0


def is_public_address(address: IPAddress) -> bool:
    """Globally routable unicast, judged on the IPv4 address an IPv6 form may carry."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not address.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def public_address(url: httpx.URL, *, param: str, resolver: Resolver) -> str:
    """The address to connect to for ``url``, once every address of its host is public."""
    if url.scheme != "https":
        raise ForbiddenImageUrl(
            f"Invalid '{param}.image_url': only https URLs are fetched (got '{url.scheme}').",
            param=f"{param}.image_url",
        )
    if url.userinfo:
        raise ForbiddenImageUrl(
            f"Invalid '{param}.image_url': URLs with a user name or password are not fetched.",
            param=f"{param}.image_url",
        )
    host = url.host
    refused = ForbiddenImageUrl(
        f"Invalid '{param}.image_url': its host is not on the public internet, and the "
        "gateway does not fetch from private, loopback or link-local addresses.",
        param=f"{param}.image_url",
    )
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not is_public_address(literal):
            raise refused
        return str(literal)
    try:
        answers = await resolver(host, url.port or 443)
    except OSError as exc:
        raise ForbiddenImageUrl(
            f"Invalid '{param}.image_url': its host name does not resolve.",
            param=f"{param}.image_url",
            code="image_url_unreachable",
        ) from exc
    addresses = [ipaddress.ip_address(answer.split("%", 1)[0]) for answer in answers]
    if not addresses or not all(is_public_address(address) for address in addresses):
        raise refused
    return str(addresses[0])


async def fetch_public_image(
    http: httpx.AsyncClient,
    raw_url: str,
    *,
    param: str,
    limits: FetchLimits,
    resolver: Resolver = system_resolver,
) -> bytes:
    try:
        url = httpx.URL(raw_url)
    except httpx.InvalidURL as exc:
        raise ForbiddenImageUrl(
            f"Invalid '{param}.image_url': not a valid URL.", param=f"{param}.image_url"
        ) from exc
    address = await public_address(url, param=param, resolver=resolver)
    pinned = url.copy_with(host=address)
    authority = url.host if url.port is None else f"{url.host}:{url.port}"
    unreachable = InvalidImage(
        f"Invalid '{param}.image_url': the image could not be fetched.",
        param=f"{param}.image_url",
        code="image_url_unreachable",
    )
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            request = http.build_request(
                "GET",
                pinned,
                headers={
                    "Host": authority,
                    "Accept": "image/png, image/jpeg, image/webp",
                    "Accept-Encoding": ACCEPT_ENCODING,
                },
                # TLS is verified against the URL's host name, not the pinned address.
                extensions={"sni_hostname": url.host},
                timeout=limits.timeout_seconds,
            )
            response = await http.send(request, stream=True, follow_redirects=False)
            try:
                if response.is_redirect:
                    raise ForbiddenImageUrl(
                        f"Invalid '{param}.image_url': it redirects, and redirects are not "
                        "followed. Give the final URL.",
                        param=f"{param}.image_url",
                    )
                if response.status_code != 200:
                    raise InvalidImage(
                        f"Invalid '{param}.image_url': fetching it answered HTTP "
                        f"{response.status_code}.",
                        param=f"{param}.image_url",
                        code="image_url_unreachable",
                    )
                return await _read_limited(response, param=param, limit=limits.max_bytes)
            finally:
                await response.aclose()
    except (httpx.HTTPError, TimeoutError) as exc:
        raise unreachable from exc


async def _read_limited(response: httpx.Response, *, param: str, limit: int) -> bytes:
    # Decoded in bounded pieces, the declared length checked first (http_pool.iter_body): a
    # server the caller named cannot make the gateway inflate a gzip bomb.
    chunks = [
        chunk
        async for chunk in iter_body(
            response,
            limit,
            too_large=lambda cap: _too_large(param, cap),
            undecodable=lambda reason: InvalidImage(
                f"Invalid '{param}.image_url': the server answered with {reason}.",
                param=f"{param}.image_url",
                code="image_url_unreachable",
            ),
        )
    ]
    return b"".join(chunks)


def _too_large(param: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The image at '{param}.image_url' is larger than {limit} bytes.",
        param=f"{param}.image_url",
    )
