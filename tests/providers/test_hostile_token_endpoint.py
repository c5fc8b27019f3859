"""Google's OAuth token endpoint as a hostile upstream (issue 12).

A Vertex call starts with a service-account token exchange (``google/tokens.py``); its answer
is an upstream answer like any other. Every hostile case of ``support.hostile_upstream`` is
served as the token endpoint's answer, plus the ways a token answer itself can be wrong (no
token, a token that cannot be a header, an expiry that is not a number, text that is not
UTF-8): each is a 502 in OpenAI's envelope, never a 500, and the answer is read up to a few
KiB only, whatever it declares. Nothing reaches Vertex without a token.
"""

from __future__ import annotations

import dataclasses
import json
import socket

import httpx
import pytest

from imagegw.errors import UpstreamBadResponse
from imagegw.providers.base import ImageProvider
from imagegw.providers.google.provider import GoogleProvider, Vertex
from imagegw.providers.google.tokens import ServiceAccountTokens

from support.google_env import service_account_key
from support.hostile_upstream import (
    ABUSES,
    TIMEOUT_SECONDS,
    Abuse,
    HostileUpstream,
    ProviderTarget,
    ReceivedRequest,
    answer,
    catalog_request,
    run_abuse,
)


def _vertex_behind(origin: str, http: httpx.AsyncClient) -> ImageProvider:
    tokens = ServiceAccountTokens(
        service_account_key().info(token_uri=origin + "/token"),
        connect_timeout_seconds=2,
        read_timeout_seconds=TIMEOUT_SECONDS,
    )
    vertex = Vertex(
        project="hostile-project",
        location="us-central1",
        gemini_location="global",
        tokens=tokens,
        base_url=origin,
    )
    return GoogleProvider(http, vertex=vertex, gemini_api=None)


TOKEN_ENDPOINT = ProviderTarget(
    "google-token-endpoint",
    _vertex_behind,
    lambda: catalog_request("google/imagen-4.0-fast"),
    secrets=(),
)

BAD = 502, ("upstream_bad_response",)


def _as_token_answer(abuse: Abuse) -> Abuse:
    """The shared case as the token endpoint's answer: the few-KiB cap decides some sooner."""
    if abuse.name == "slow-drip":
        # It declares 100,000 bytes: refused before the drip, and the connection dropped.
        return dataclasses.replace(abuse, status=502, codes=("upstream_bad_response",))
    return abuse


def _token(document: object, *, status: int = 200) -> Abuse:
    return Abuse(f"token-{status}", answer(json.dumps(document).encode(), status=status), *BAD)


TOKEN_ABUSES: tuple[Abuse, ...] = (
    # Nested beyond the parser's recursion limit, yet within the cap.
    Abuse("deep-within-the-cap", answer(b"[" * 3000 + b"]" * 3000), *BAD),
    Abuse("deep-error-within-the-cap", answer(b"[" * 3000 + b"]" * 3000, status=400), *BAD),
    Abuse("no-access-token", answer(b'{"expires_in": 3599, "token_type": "Bearer"}'), *BAD),
    Abuse("an-array", answer(b'["ya29.a"]'), *BAD),
    Abuse("token-not-a-string", answer(b'{"access_token": 12345, "expires_in": 3599}'), *BAD),
    Abuse("token-empty", answer(b'{"access_token": "", "expires_in": 3599}'), *BAD),
    Abuse(
        "token-splits-a-header",
        answer(b'{"access_token": "ya29.a\\r\\nX-Injected: 1", "expires_in": 3599}'),
        *BAD,
    ),
    Abuse(
        "token-not-ascii",
        answer('{"access_token": "ya29.\u00e9t\u00e9", "expires_in": 3599}'.encode()),
        *BAD,
    ),
    Abuse(
        "token-lone-surrogate",
        answer(b'{"access_token": "ya29.\\ud800", "expires_in": 3599}'),
        *BAD,
    ),
    Abuse(
        "expires-in-words",
        answer(b'{"access_token": "ya29.a", "expires_in": "soon"}'),
        *BAD,
    ),
    Abuse(
        "expires-in-5000-digits",
        answer(b'{"access_token": "ya29.a", "expires_in": "' + b"9" * 5000 + b'"}'),
        *BAD,
    ),
    Abuse(
        "expires-in-1e300",
        answer(b'{"access_token": "ya29.a", "expires_in": 1e300}'),
        *BAD,
    ),
    Abuse(
        "expires-in-a-list",
        answer(b'{"access_token": "ya29.a", "expires_in": [3599]}'),
        *BAD,
    ),
    Abuse("not-utf8", answer(b'{"access_token": "ya29.\xff\xfe", "expires_in": 3599}'), *BAD),
    # An error that is not UTF-8 (nor JSON) is judged by its status, as any error page.
    Abuse("error-not-utf8", answer(b"\xff\xfe<html>", status=400), 502, ("upstream_auth_failed",)),
)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "abuse",
    [_as_token_answer(abuse) for abuse in ABUSES] + list(TOKEN_ABUSES),
    ids=[abuse.name for abuse in ABUSES + TOKEN_ABUSES],
)
async def test_a_hostile_token_answer_is_a_clean_502(abuse: Abuse) -> None:
    await run_abuse(TOKEN_ENDPOINT, abuse)


@pytest.mark.anyio
async def test_a_good_token_answer_still_serves() -> None:
    """The checks let a real answer through: the token reaches Vertex's Authorization header."""
    good = b'{"access_token": "ya29.good-token", "expires_in": "3599", "token_type": "Bearer"}'
    with HostileUpstream() as upstream:
        upstream.abuse = answer(good)
        tokens = ServiceAccountTokens(
            service_account_key().info(token_uri=upstream.origin + "/token"),
            connect_timeout_seconds=2,
        )
        assert await tokens.token() == "ya29.good-token"
        assert len(upstream.requests) == 1
        assert upstream.requests[0].headers.get("accept-encoding") == "identity"


def _drip_without_length(
    sock: socket.socket, request: ReceivedRequest, server: HostileUpstream
) -> None:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    while not server.stopping.wait(0.05):
        try:
            sock.sendall(b" ")
        except OSError:
            server.disconnected.set()
            return


@pytest.mark.anyio
async def test_a_drip_ends_at_the_read_budget_not_at_the_cap() -> None:
    """A byte at a time restarts httpx's read timeout with every byte; the budget does not."""
    with HostileUpstream() as upstream:
        upstream.abuse = _drip_without_length
        tokens = ServiceAccountTokens(
            service_account_key().info(token_uri=upstream.origin + "/token"),
            connect_timeout_seconds=2,
            read_timeout_seconds=0.5,
        )
        with pytest.raises(UpstreamBadResponse) as caught:
            await tokens.token()
        assert "too long" in caught.value.message
        assert upstream.disconnected.wait(10), "the connection was not dropped"
