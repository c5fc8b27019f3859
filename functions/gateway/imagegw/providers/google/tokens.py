"""OAuth access tokens for Vertex AI from a service account: google-auth, over httpx.

google-auth signs the JWT assertion and decides when a token needs refreshing (3 min 45 s before
it expires); it ships no httpx transport and the gateway does not carry ``requests``, so
``HttpxRequest`` adapts a sync ``httpx.Client`` to its ``transport.Request``. The refresh is
blocking: it runs in a worker thread, and one refresh serves every request waiting for it.

Imported only when a service account is configured: google-auth costs nothing otherwise.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
from google.auth import exceptions as auth_exceptions
from google.auth import transport
from google.auth.credentials import TokenState
from google.oauth2 import service_account

from imagegw.errors import (
    ProviderNotConfigured,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamUnreachable,
)
from imagegw.fastpath.content_length import declared_length
from imagegw.providers.base import error_document, parse_answer

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_REQUIRED_FIELDS = ("client_email", "private_key", "token_uri")
_UPSTREAM = "Google's token endpoint"
# A token answer is a token (Google's are a few hundred bytes to 2 KiB), its lifetime and
# type; anything much larger is not one.
MAX_TOKEN_ANSWER_BYTES = 16 * 1024
# A token becomes an Authorization header: visible ASCII only (no space, no line break).
_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}")
# A lifetime is an hour; nine digits is three decades.
_MAX_LIFETIME_DIGITS = 9
# The read budget when the client sets no read timeout.
DEFAULT_READ_SECONDS = 30.0


class _Response(transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status = status
        self._headers = headers
        self._data = data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class HttpxRequest(transport.Request):
    """google-auth's HTTP seam over a sync httpx client.

    The token endpoint is an upstream like any other (issue 12): its answer is read up to
    ``MAX_TOKEN_ANSWER_BYTES`` and checked (``checked_token_answer``) before google-auth parses
    it, so that nothing it sends can cost memory, reach google-auth's unguarded ``json.loads``
    and ``int()``, or become a header value that cannot be sent. Each such answer is a 502
    ``upstream_bad_response``.
    """

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        try:
            request = self._client.build_request(
                method,
                url,
                content=body,
                # Nothing compressed: a few KiB need no compression, and a bomb needs none.
                headers={**(headers or {}), "Accept-Encoding": "identity"},
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            response = self._client.send(request, stream=True)
        except httpx.RemoteProtocolError as exc:
            raise _bad("an answer that is not HTTP") from exc
        except httpx.HTTPError as exc:
            # The exception's text may carry the URL; the type says enough. (google-auth's
            # exception and factory signatures are untyped.)
            raise auth_exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"{type(exc).__name__} while calling the token endpoint"
            ) from exc
        try:
            data = _read_capped(response, self._client.timeout.read)
        except httpx.HTTPError as exc:
            raise _bad("an answer that was cut short or never ended") from exc
        finally:
            # Not read to its end (cut off at the cap): the connection is closed, never reused.
            response.close()
        status = response.status_code
        return _Response(status, response.headers, checked_token_answer(status, data))


def _read_capped(response: httpx.Response, read_timeout: float | None) -> bytes:
    """The answer's bytes, at most ``MAX_TOKEN_ANSWER_BYTES`` and in about the read timeout.

    httpx's read timeout restarts with every piece: a drip of a byte at a time would hold the
    refresh (and every request waiting for it) far longer without the overall budget.
    """
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise _bad("an encoding the gateway did not ask for")
    declared = declared_length(response.headers.get("content-length"))
    if declared is not None and declared > MAX_TOKEN_ANSWER_BYTES:
        raise _too_large()
    budget = time.monotonic() + (read_timeout or DEFAULT_READ_SECONDS)
    received = bytearray()
    for piece in response.iter_raw():
        received += piece
        if len(received) > MAX_TOKEN_ANSWER_BYTES:
            raise _too_large()
        if time.monotonic() > budget:
            raise _bad("an answer that took too long to arrive")
    return bytes(received)


def checked_token_answer(status: int, data: bytes) -> bytes:
    """``data`` as google-auth may read it, or ``UpstreamBadResponse`` (a 502).

    A success must be a JSON object with a token that can be a header value and a lifetime
    that is a number of seconds (google-auth calls ``int()`` on a string and ``timedelta`` on
    anything). An error's body only explains its status: JSON nested beyond the parser's limit
    is refused; one that is not JSON at all (a proxy's page, not even UTF-8) reaches google-auth
    as empty, and the status decides.
    """
    if status != 200:
        return data if error_document(data, upstream=_UPSTREAM) is not None else b""
    document = parse_answer(data, upstream=_UPSTREAM)
    if not isinstance(document, dict):
        raise _bad("something other than a JSON object")
    token = document.get("access_token")
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise _bad("no access token that can be sent in a header")
    lifetime = document.get("expires_in")
    if lifetime is not None and not _seconds(lifetime):
        raise _bad("a token lifetime that is not a number of seconds")
    return data


def _seconds(value: object) -> bool:
    if isinstance(value, str):
        return value.isascii() and value.isdigit() and len(value) <= _MAX_LIFETIME_DIGITS
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value < 10**_MAX_LIFETIME_DIGITS
    )


def _bad(what: str) -> UpstreamBadResponse:
    return UpstreamBadResponse(f"Google's token endpoint answered with {what}.")


def _too_large() -> UpstreamBadResponse:
    return UpstreamBadResponse(
        f"Google's token endpoint answered with more than {MAX_TOKEN_ANSWER_BYTES} bytes: not "
        "a token; the gateway cut it off."
    )


class ServiceAccountTokens:
    """A service account's access token, fetched once and reused until google-auth says not."""

    def __init__(
        self,
        info: Mapping[str, Any],
        *,
        connect_timeout_seconds: float,
        read_timeout_seconds: float = 30.0,
    ) -> None:
        missing = [field for field in _REQUIRED_FIELDS if not info.get(field)]
        if missing:
            raise ProviderNotConfigured(
                "The provider 'google' is not configured: the service account JSON lacks "
                f"{', '.join(missing)}. Use the key file Google issued for the service account."
            )
        try:
            credentials = service_account.Credentials.from_service_account_info
            self._credentials = credentials(  # type: ignore[no-untyped-call]
                dict(info), scopes=[CLOUD_PLATFORM_SCOPE]
            )
        except (ValueError, TypeError):
            # The message may quote the key material: say only what is wrong.
            raise ProviderNotConfigured(
                "The provider 'google' is not configured: the service account's private_key "
                "cannot be read. Use the key file Google issued for the service account."
            ) from None
        self._timeout = httpx.Timeout(read_timeout_seconds, connect=connect_timeout_seconds)
        self._refreshing: asyncio.Future[None] | None = None

    async def token(self) -> str:
        if self._credentials.token_state != TokenState.FRESH:
            await self._refresh()
        token = self._credentials.token
        if not isinstance(token, str) or not token:
            raise UpstreamAuthFailed("Google's token endpoint answered without an access token.")
        return token

    async def _refresh(self) -> None:
        # Single flight: every caller that finds the token stale awaits the same refresh. A
        # caller that gives up (its deadline passed) does not cancel it for the others, and no
        # second refresh starts while the first one's thread is still running.
        task = self._refreshing
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(asyncio.to_thread(self._refresh_blocking))
            task.add_done_callback(_consume_exception)
            self._refreshing = task
        await asyncio.shield(task)

    def _refresh_blocking(self) -> None:
        # A client per refresh (about once an hour): nothing stays open for a provider that is
        # replaced while a request still holds it.
        try:
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                self._credentials.refresh(HttpxRequest(client))
        except auth_exceptions.TransportError as exc:
            raise UpstreamUnreachable(
                "The gateway could not reach Google's token endpoint; the image request was "
                "not sent."
            ) from exc
        except auth_exceptions.RefreshError as exc:
            if exc.retryable:
                raise UpstreamUnreachable(
                    "Google's token endpoint failed; the image request was not sent."
                ) from exc
            raise UpstreamAuthFailed(
                "Google refused the gateway's service account. This is a problem with the "
                "gateway's configuration, not with your request or key."
            ) from exc


def _consume_exception(task: asyncio.Future[None]) -> None:
    # Callers read the exception; if all of them gave up first, nobody would, and asyncio would
    # log "exception was never retrieved".
    if not task.cancelled():
        task.exception()
