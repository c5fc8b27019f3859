"""Reading an upstream's Server-Sent Events (text/event-stream), as the HTML standard defines them.

Lines end with CRLF, LF or CR; ``event:`` names the event, ``data:`` lines (joined with LF) are
its data, lines starting with ``:`` are comments (keep-alives), and a blank line dispatches the
event. An event without data is not dispatched. Partial images make single ``data`` lines of
megabytes, so the buffer is scanned once: each search for a line end starts where the last one
stopped, not at the start of the buffer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str | None
    data: bytes


class SSEDecoder:
    """Feed bytes in any pieces; collect the events completed so far."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # no line end before this offset of the buffer
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._buffer += chunk
        events: list[ServerSentEvent] = []
        start = 0
        buffer = self._buffer
        while True:
            end = self._line_end(buffer, max(start, self._scanned))
            if end is None:
                self._scanned = len(buffer)
                break
            line = bytes(buffer[start:end])
            # A CR at the very end may be the first half of a CRLF still on its way.
            if buffer[end] == 0x0D and end + 1 == len(buffer):
                self._scanned = end
                break
            step = 2 if buffer[end] == 0x0D and buffer[end + 1] == 0x0A else 1
            start = end + step
            self._scanned = start
            event = self._line(line)
            if event is not None:
                events.append(event)
        del buffer[:start]
        self._scanned = max(0, self._scanned - start)
        return events

    def end(self) -> list[ServerSentEvent]:
        """The stream closed: a last line and event without their line ends still count (an
        event cut short does not parse as JSON, so leniency here hides nothing)."""
        events = self.feed(b"\n") if self._buffer else []
        last = self._dispatch()
        return [*events, last] if last is not None else events

    @staticmethod
    def _line_end(buffer: bytearray, offset: int) -> int | None:
        lf = buffer.find(b"\n", offset)
        cr = buffer.find(b"\r", offset, lf if lf >= 0 else len(buffer))
        if cr >= 0:
            return cr
        return lf if lf >= 0 else None

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"data":
            self._data.append(value)
        # id, retry and unknown fields mean nothing to a one-shot image stream.
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event, self._data
        self._event, self._data = None, []
        if not data:
            return None
        return ServerSentEvent(event, b"\n".join(data))


async def decode(chunks: AsyncIterable[bytes]) -> AsyncGenerator[ServerSentEvent, None]:
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.end():
        yield event
