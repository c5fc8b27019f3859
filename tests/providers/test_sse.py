"""The upstream SSE decoder: line ends, comments, multi-line data, and any split of the bytes."""

from __future__ import annotations

import pytest

from imagegw.providers.sse import ServerSentEvent, SSEDecoder

STREAM = (
    b": keep-alive\r\n"
    b"event: image_generation.partial_image\r\n"
    b'data: {"a":1}\r\n'
    b"\r\n"
    b"event: two\n"
    b"data: first line\n"
    b"data:second line\n"
    b"id: 7\n"
    b"\n"
    b"data: cr only\r\r"
    b"event: no-data\n\n"
)
EXPECTED = [
    ServerSentEvent("image_generation.partial_image", b'{"a":1}'),
    ServerSentEvent("two", b"first line\nsecond line"),
    ServerSentEvent(None, b"cr only"),
]


def decode_in_pieces(data: bytes, size: int) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for start in range(0, len(data), size):
        events += decoder.feed(data[start : start + size])
    return events + decoder.end()


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_events_are_the_same_however_the_bytes_are_split(size: int) -> None:
    assert decode_in_pieces(STREAM, size) == EXPECTED


def test_a_crlf_split_between_pieces_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\n\r") == []
    assert decoder.feed(b"\n") == [ServerSentEvent(None, b"x")]


def test_the_last_event_counts_without_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: image_generation.completed\ndata: {}") == []
    assert decoder.end() == [ServerSentEvent("image_generation.completed", b"{}")]


def test_a_megabyte_data_line_in_small_pieces() -> None:
    payload = b"A" * 1_000_000
    events = decode_in_pieces(b"data: " + payload + b"\n\n", 4096)
    assert events == [ServerSentEvent(None, payload)]
