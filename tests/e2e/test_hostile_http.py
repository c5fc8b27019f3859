"""Hostile HTTP on the wire (raw sockets, since HTTP clients refuse to send it).

Header values with CR or LF, non-ASCII Idempotency-Keys, huge and countless headers, and
unnormalized ``..`` paths: never a 5xx, nothing echoed into the response's headers, no file from
outside the store, and the server keeps serving the next request. (A bare LF ends a header line
for h11, as RFC 9112 allows, so "a\nX-Injected: yes" is two headers, neither echoed. Oversized
headers are h11's to refuse; under Lambda, API Gateway caps them first.)
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from e2e.conftest import CLIENT_KEY, MakeGateway

from support.servers import GatewayServer

BODY = b'{"model": "local/sketch", "prompt": "a fox", "size": "256x256"}'


def send(gateway: GatewayServer, head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1.1 "):
        return None  # closed without an answer
    return int(answer.split(b" ", 2)[1])


def post_head(*extra: bytes, length: int = len(BODY)) -> bytes:
    lines = [
        b"POST /v1/images/generations HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Authorization: Bearer " + CLIENT_KEY.encode(),
        b"Content-Type: application/json",
        b"Content-Length: " + str(length).encode(),
        b"Connection: close",
        *extra,
    ]
    return b"\r\n".join(lines)


def still_serving(gateway: GatewayServer) -> None:
    response = httpx.post(
        gateway.base_url + "/v1/images/generations",
        content=BODY,
        headers={"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200


@pytest.fixture
def gateway(make_gateway: MakeGateway) -> GatewayServer:
    return make_gateway()


@pytest.mark.parametrize(
    "header",
    [
        b"Idempotency-Key: abc\rX-Injected: yes",
        b"Idempotency-Key: abc\nX-Injected: yes",
        b"X-Custom: one\r two",
        b"Authorization : Bearer sneaky",
    ],
    ids=["cr", "lf", "bare-cr-in-value", "space-before-colon"],
)
def test_cr_lf_in_headers_is_never_echoed(gateway: GatewayServer, header: bytes) -> None:
    answer = send(gateway, post_head(header), BODY)
    status = status_of(answer)
    assert status is None or status < 500, answer[:200]
    assert b"X-Injected" not in answer
    assert b"x-injected" not in answer.lower()
    still_serving(gateway)


def test_a_non_ascii_idempotency_key_is_a_clean_400(gateway: GatewayServer) -> None:
    answer = send(gateway, post_head(b"Idempotency-Key: caf\xe9"), BODY)
    assert status_of(answer) == 400
    assert b'"param":"Idempotency-Key"' in answer.replace(b" ", b"")


@pytest.mark.parametrize(
    "extra",
    [
        [b"X-Huge: " + b"a" * 200_000],
        [f"X-Many-{index}: v".encode() for index in range(5000)],
        [b"Authorization2: Bearer " + b"k" * 100_000],
    ],
    ids=["one-huge-header", "many-headers", "huge-key-like-header"],
)
def test_huge_headers_never_cause_a_5xx(gateway: GatewayServer, extra: list[bytes]) -> None:
    answer = send(gateway, post_head(*extra), BODY)
    status = status_of(answer)
    assert status is None or status < 500, answer[:200]
    assert b"a" * 1000 not in answer
    assert b"k" * 1000 not in answer
    still_serving(gateway)


def test_a_huge_bearer_token_is_just_a_wrong_key(gateway: GatewayServer) -> None:
    answer = send(
        gateway,
        post_head().replace(b"Bearer " + CLIENT_KEY.encode(), b"Bearer " + b"k" * 8000),
        BODY,
    )
    assert status_of(answer) == 401
    assert b"k" * 100 not in answer


@pytest.mark.parametrize(
    "path",
    [
        b"/v1/images/files/../../../../etc/passwd",
        b"/v1/images/files/..%2f..%2fsecret.txt",
        b"/v1/images/files/%2e%2e/%2e%2e/secret.txt",
        b"/v1/images/../../secret.txt",
    ],
)
def test_unnormalized_paths_never_leave_the_store(
    gateway: GatewayServer, tmp_path: Path, path: bytes
) -> None:
    (tmp_path / "secret.txt").write_text("TOP-SECRET-FILE")
    head = b"\r\n".join(
        [
            b"GET " + path + b"?expires=9999999999&signature=00 HTTP/1.1",
            b"Host: 127.0.0.1",
            b"Connection: close",
        ]
    )
    answer = send(gateway, head)
    status = status_of(answer)
    assert status is not None
    assert 400 <= status < 500
    assert b"TOP-SECRET-FILE" not in answer
    assert b"root:" not in answer
