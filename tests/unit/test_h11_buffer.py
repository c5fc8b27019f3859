"""``fastpath/h11_buffer.py``: the same events as h11's own buffer, without copying body pieces.

The same bytes (answers by length, chunked, or ending at the close; several on one kept-alive
connection; broken ones), cut at arbitrary places and delivered as ``bytes`` or ``bytearray``,
go through two h11 client connections, one with each buffer: the events, their data, the
errors and the bytes left over must be the same.
"""

from __future__ import annotations

import itertools
from typing import Any

import h11
import httpx
import pytest
from h11 import _connection
from h11._receivebuffer import ReceiveBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegw.fastpath import h11_buffer
from imagegw.fastpath.h11_buffer import PassThroughReceiveBuffer
from imagegw.fastpath.http_pool import upstream_client


def client_connection(buffer: ReceiveBuffer) -> h11.Connection:
    connection = h11.Connection(our_role=h11.CLIENT)
    connection._receive_buffer = buffer
    return connection


def start_request(connection: h11.Connection) -> None:
    connection.send(h11.Request(method="POST", target="/", headers=[("Host", "upstream")]))
    connection.send(h11.EndOfMessage())


def events_of(buffer: ReceiveBuffer, pieces: list[bytes | bytearray], answers: int) -> list[Any]:
    """What an h11 client connection makes of ``pieces``: events (data as bytes), errors, and
    the bytes it still holds at the end."""
    connection = client_connection(buffer)
    start_request(connection)
    seen: list[Any] = []
    feed = iter(pieces)
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                piece = next(feed, b"")
                connection.receive_data(piece)
                if not piece:
                    seen.append("eof")
                    continue
            elif event is h11.PAUSED:
                seen.append("paused")
                answers -= 1
                if answers == 0 or connection.our_state is not h11.DONE:
                    break
                connection.start_next_cycle()
                start_request(connection)
            elif isinstance(event, h11.Data):
                seen.append(("data", bytes(event.data)))
            elif isinstance(event, h11.ConnectionClosed):
                seen.append("closed")
                break
            else:
                seen.append(repr(event))
    except h11.RemoteProtocolError as error:
        seen.append(("error", str(error)))
    seen.append(("left", connection.trailing_data))
    return seen


def by_length(body: bytes, status: int = 200) -> bytes:
    head = f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


def chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + encoded + b"0\r\n\r\n"


def until_close(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + body


ANSWER = st.one_of(
    st.builds(by_length, st.binary(max_size=3000)),
    st.builds(by_length, st.binary(max_size=200), st.sampled_from([200, 404, 500])),
    st.builds(chunked, st.binary(min_size=1, max_size=3000), st.integers(1, 700)),
    st.builds(until_close, st.binary(max_size=2000)),
)
# What breaks an answer somewhere: a wrong length, a bad header line, bytes after the end.
DAMAGE = st.sampled_from([b"", b"\r\n", b"garbage\r\n\r\n", b"HTTP/1.1 200", b"\x00"])


@settings(max_examples=400, deadline=None)
@given(
    answers=st.lists(ANSWER, min_size=1, max_size=3),
    damage=DAMAGE,
    damage_at=st.integers(min_value=0),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    as_bytearray=st.lists(st.booleans(), max_size=13),
)
def test_the_same_events_as_h11s_own_buffer_wherever_the_pieces_are_cut(
    answers: list[bytes],
    damage: bytes,
    damage_at: int,
    cuts: list[int],
    as_bytearray: list[bool],
) -> None:
    stream = b"".join(answers)
    at = damage_at % (len(stream) + 1)
    stream = stream[:at] + damage + stream[at:]
    edges = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
    cut = [stream[a:b] for a, b in itertools.pairwise(edges) if b > a]
    pieces: list[bytes | bytearray] = [
        bytearray(piece) if index < len(as_bytearray) and as_bytearray[index] else piece
        for index, piece in enumerate(cut)
    ]
    expected = events_of(ReceiveBuffer(), [bytes(piece) for piece in pieces], len(answers))
    assert events_of(PassThroughReceiveBuffer(), pieces, len(answers)) == expected


def test_a_body_piece_that_fills_the_buffer_is_handed_over_not_copied() -> None:
    body = bytes(range(256)) * 1000
    connection = client_connection(PassThroughReceiveBuffer())
    start_request(connection)
    connection.receive_data(f"HTTP/1.1 200 OK\r\ncontent-length: {2 * len(body)}\r\n\r\n".encode())
    assert isinstance(connection.next_event(), h11.Response)
    assert connection.next_event() is h11.NEED_DATA
    for _ in range(2):
        connection.receive_data(body)
        event = connection.next_event()
        assert isinstance(event, h11.Data)
        # The very object the socket delivered: httpcore's bytes(...) keeps it as it is.
        assert event.data is body
        assert bytes(event.data) is body
    assert isinstance(connection.next_event(), h11.EndOfMessage)


def test_another_h11_version_keeps_h11s_own_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_connection, "ReceiveBuffer", ReceiveBuffer)
    monkeypatch.setattr(h11, "__version__", "0.17.0")
    assert not h11_buffer.install()
    assert _connection.ReceiveBuffer is ReceiveBuffer
    assert type(h11.Connection(our_role=h11.CLIENT)._receive_buffer) is ReceiveBuffer


def test_the_upstream_client_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_connection, "ReceiveBuffer", ReceiveBuffer)
    client = upstream_client()
    assert isinstance(client, httpx.AsyncClient)
    assert _connection.ReceiveBuffer is PassThroughReceiveBuffer
    assert type(h11.Connection(our_role=h11.CLIENT)._receive_buffer) is PassThroughReceiveBuffer


# The replacement is process-wide: h11 servers (uvicorn without httptools) use it too.
def server_events_of(
    buffer: ReceiveBuffer, pieces: list[bytes | bytearray], requests: int
) -> list[Any]:
    """What an h11 server connection makes of ``pieces`` (answering each request it reads)."""
    connection = h11.Connection(our_role=h11.SERVER)
    connection._receive_buffer = buffer
    seen: list[Any] = []
    feed = iter(pieces)
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                if connection.they_are_waiting_for_100_continue:
                    seen.append("100-continue")
                piece = next(feed, b"")
                connection.receive_data(piece)
                if not piece:
                    seen.append("eof")
            elif event is h11.PAUSED or isinstance(event, h11.EndOfMessage):
                seen.append(repr(event))
                if connection.our_state is h11.SEND_RESPONSE:
                    connection.send(h11.Response(status_code=204, headers=[]))
                    connection.send(h11.EndOfMessage())
                requests -= 1
                if requests <= 0 or connection.states[h11.CLIENT] is not h11.DONE:
                    break
                connection.start_next_cycle()
            elif isinstance(event, h11.Data):
                seen.append(("data", bytes(event.data)))
            elif isinstance(event, h11.ConnectionClosed):
                seen.append("closed")
                break
            else:
                seen.append(repr(event))
    except h11.RemoteProtocolError as error:
        seen.append(("error", str(error)))
    seen.append(("left", connection.trailing_data))
    return seen


def post(body: bytes) -> bytes:
    head = f"POST /v1/images/edits HTTP/1.1\r\nhost: gw\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def post_chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    head = b"POST /v1/images/edits HTTP/1.1\r\nhost: gw\r\ntransfer-encoding: chunked\r\n\r\n"
    return head + encoded + b"0\r\n\r\n"


REQUEST = st.one_of(
    st.builds(post, st.binary(max_size=3000)),
    st.builds(post_chunked, st.binary(min_size=1, max_size=3000), st.integers(1, 700)),
    st.just(b"GET /v1/models HTTP/1.1\r\nhost: gw\r\n\r\n"),
)


@settings(max_examples=300, deadline=None)
@given(
    requests=st.lists(REQUEST, min_size=1, max_size=3),
    damage=DAMAGE,
    damage_at=st.integers(min_value=0),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
)
def test_an_h11_server_reads_the_same_requests_with_either_buffer(
    requests: list[bytes], damage: bytes, damage_at: int, cuts: list[int]
) -> None:
    stream = b"".join(requests)
    at = damage_at % (len(stream) + 1)
    stream = stream[:at] + damage + stream[at:]
    edges = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
    pieces: list[bytes | bytearray] = [stream[a:b] for a, b in itertools.pairwise(edges) if b > a]
    expected = server_events_of(ReceiveBuffer(), pieces, len(requests))
    assert server_events_of(PassThroughReceiveBuffer(), pieces, len(requests)) == expected
