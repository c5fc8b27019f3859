"""HTTP for BFL: bounded reads, and which URLs the gateway follows.

Every answer is read into memory with a limit checked on the declared length first and on the
bytes as they arrive (``http_pool.read_body``: one buffer, sized only once enough of the declared
length has arrived), so a hostile or broken upstream cannot make the gateway allocate what it
declares.

BFL's answers carry URLs: ``polling_url`` (the gateway sends its key there) and the result's
``sample`` (a short-lived signed link, fetched without the key). The gateway follows only those
URLs, and only when they look like BFL's: a polling URL on the configured host or, for BFL's
own endpoints, another ``*.bfl.ai`` cluster; a sample over https (plain http only when the
configured endpoint is plain http itself: a test double or a private endpoint).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from imagegw.fastpath.content_length import declared_length
from imagegw.fastpath.http_pool import ACCEPT_ENCODING, read_body

BFL_DOMAIN = "bfl.ai"
# Submit and poll answers are a few hundred bytes; anything near this is not BFL's answer.
MAX_ANSWER_BYTES = 1024 * 1024
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class BodyTooLarge(Exception):
    def __init__(self, declared: int | None, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.declared = declared
        self.limit = limit


class Truncated(Exception):
    """The answer started but broke off before its declared end."""


class UntrustedUrl(Exception):
    """A URL from BFL's answer that the gateway will not follow (the message says why)."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes | bytearray


def trusted_polling_url(value: object, base: httpx.URL) -> httpx.URL:
    """``polling_url`` if the gateway may send its key there, else ``UntrustedUrl``."""
    url = _url(value)
    if base.scheme == "https" and url.scheme != "https":
        raise UntrustedUrl("a polling URL that is not https")
    if url.host == base.host or (_under(url.host, BFL_DOMAIN) and _under(base.host, BFL_DOMAIN)):
        return url
    raise UntrustedUrl(f"a polling URL on another host ({url.host[:80]})")


def trusted_sample_url(value: object, base: httpx.URL) -> httpx.URL:
    """A result link (or a redirect from it) the gateway may download, else ``UntrustedUrl``."""
    url = _url(value)
    if url.scheme != "https" and not (url.scheme == "http" and base.scheme == "http"):
        raise UntrustedUrl("an image link that is not https")
    return url


def _url(value: object) -> httpx.URL:
    if not isinstance(value, str) or not value or len(value) > 8192:
        raise UntrustedUrl("no usable URL")
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError):
        raise UntrustedUrl("a URL that does not parse") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UntrustedUrl("a URL that is not http(s)")
    return url


def _under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


async def fetch(
    http: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    *,
    headers: dict[str, str],
    timeouts: httpx.Timeout,
    limit: int = MAX_ANSWER_BYTES,
    content: bytes | None = None,
) -> Answer:
    """One request, its answer read whole up to ``limit`` bytes (``BodyTooLarge`` beyond).

    httpx's exceptions pass through: what they mean (sent or not, billed or not) depends on
    the call, so the caller maps them. An answer that breaks off once started is ``Truncated``.
    """
    # Only encodings the gateway inflates with a bound (http_pool).
    headers = {"Accept-Encoding": ACCEPT_ENCODING, **headers}
    request = http.build_request(method, url, headers=headers, content=content, timeout=timeouts)
    response = await http.send(request, stream=True)
    try:
        return Answer(response.status_code, response.headers, await _read(response, limit))
    finally:
        await response.aclose()


async def download(
    http: httpx.AsyncClient,
    url: httpx.URL,
    base: httpx.URL,
    *,
    timeouts: httpx.Timeout,
    limit: int,
) -> Answer:
    """GET a result link without credentials, following a few redirects that are trusted too."""
    for _ in range(MAX_REDIRECTS + 1):
        request = http.build_request(
            "GET",
            url,
            headers={"Accept": "image/*", "Accept-Encoding": ACCEPT_ENCODING},
            timeout=timeouts,
        )
        response = await http.send(request, stream=True)
        try:
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or location is None:
                return Answer(response.status_code, response.headers, await _read(response, limit))
        finally:
            await response.aclose()
        url = trusted_sample_url(str(url.join(location)), base)
    raise UntrustedUrl(f"more than {MAX_REDIRECTS} redirects")


async def _read(response: httpx.Response, limit: int) -> bytearray:
    declared = declared_length(response.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise BodyTooLarge(declared, limit)
    try:
        # Decoded in bounded pieces (http_pool.iter_body): a gzip bomb stops at the limit.
        return await read_body(response, limit, too_large=lambda cap: BodyTooLarge(None, cap))
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise Truncated("the answer broke off before its end") from exc
