"""One upstream call on a deadline: sent once, its answer read under the cap, and its transport
failures mapped by the retry table.

A call that could not connect was never sent (retryable upstream); one that timed out or broke
in flight may have generated and billed an image, so it is never re-sent; one whose answer
broke off after its head arrived is a bad answer. The whole exchange, answer included, shares
the request's deadline (httpx's read timeout restarts with every chunk).
"""

from __future__ import annotations

import asyncio

import httpx

from imagegw.errors import UpstreamBadResponse, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from imagegw.fastpath.http_pool import ACCEPT_ENCODING, read_body


async def post(
    http: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    connect_timeout: float,
    max_bytes: int,
    seconds_left: float,
    upstream: str,
) -> tuple[httpx.Response, bytearray]:
    """POST ``content`` to ``url`` as one ``exchange``: the connect timeout at most what is
    left, and only the encodings the gateway inflates with a bound (``http_pool``; not part of
    a signature, which ``headers`` may carry)."""
    request = http.build_request(
        "POST",
        url,
        content=content,
        headers={**headers, "Accept-Encoding": ACCEPT_ENCODING},
        timeout=httpx.Timeout(seconds_left, connect=min(connect_timeout, seconds_left)),
    )
    return await exchange(
        http, request, max_bytes=max_bytes, seconds_left=seconds_left, upstream=upstream
    )


async def exchange(
    http: httpx.AsyncClient,
    request: httpx.Request,
    *,
    max_bytes: int,
    seconds_left: float,
    upstream: str,
) -> tuple[httpx.Response, bytearray]:
    """Send ``request`` and read its answer (any status) into one buffer; ``upstream`` names the
    provider in the errors (``"Stability AI"``). Send with ``http_pool.ACCEPT_ENCODING``."""
    answered = False
    try:
        async with asyncio.timeout(seconds_left):
            response = await http.send(request, stream=True)
            answered = True
            try:
                # Decoded in bounded pieces, the declared length checked first, error bodies
                # too (http_pool.iter_body).
                content = await read_body(response, max_bytes)
            finally:
                # An answer not read to its end closes the connection (never reused).
                await response.aclose()
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise UpstreamUnreachable(
            f"The gateway could not connect to {upstream}; the request was not sent."
        ) from exc
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise UpstreamTimeout(
            f"{upstream} did not answer in time. The image may still have been generated "
            "and billed, so the gateway does not retry on its own."
        ) from exc
    except httpx.HTTPError as exc:
        if answered:
            raise UpstreamBadResponse(f"{upstream}'s answer was cut short.") from exc
        raise UpstreamError(
            f"The connection to {upstream} failed while the request was in flight. The "
            "image may still have been generated, so the gateway does not retry on its own."
        ) from exc
    return response, content
