"""OAuth access tokens for Vertex AI from a service account: google-auth, over httpx.

google-auth signs the JWT assertion and decides when a token needs refreshing (3 min 45 s before
it expires); it ships no httpx transport and the gateway does not carry ``requests``, so
``HttpxRequest`` adapts a sync ``httpx.Client`` to its ``transport.Request``. The refresh is
blocking: it runs in a worker thread, and one refresh serves every request waiting for it.

Imported only when a service account is configured: google-auth costs nothing otherwise.
"""

from __future__ import annotations

import asyncio
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
    UpstreamUnreachable,
)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_REQUIRED_FIELDS = ("client_email", "private_key", "token_uri")


class _Response(transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(transport.Request):
    """google-auth's HTTP seam over a sync httpx client."""

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
            response = self._client.request(
                method,
                url,
                content=body,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            # The exception's text may carry the URL; the type says enough. (google-auth's
            # exception and factory signatures are untyped.)
            raise auth_exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"{type(exc).__name__} while calling the token endpoint"
            ) from exc
        return _Response(response)


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
