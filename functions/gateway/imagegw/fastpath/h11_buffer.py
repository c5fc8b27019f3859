"""h11's receive buffer without the three copies it makes of every byte of an answer's body.

httpcore parses answers with h11, which keeps what the socket delivered in a ``bytearray``
(``ReceiveBuffer``). For a body read by length, each piece the socket delivered was copied into
that buffer (``+=``), copied out to see whether anything was there (``maybe_extract_at_most``
slices before it looks), copied out again to be returned (``_extract``), and httpcore then
copies it once more into ``bytes``: four copies of a 2 MB image before the gateway sees it,
about half of the ``memmove`` time in a profile of the gateway (bench/RESULTS.md, round 7).

``PassThroughReceiveBuffer`` keeps h11's rules and hands pieces over instead:

- a piece arriving in an empty buffer is held as it came (``bytes``, not copied);
- a body extraction that takes everything held returns what is held (the piece itself, which
  httpcore's ``bytes(...)`` then returns unchanged), and an empty buffer takes its place;
- everything else (header lines, a part of what is held) works on a ``bytearray`` exactly as
  h11 does, the held piece being copied into one first.

It replaces ``h11._connection.ReceiveBuffer`` (every h11 connection made afterwards in the
process), only with the h11 version it was written for (``WRITTEN_FOR``); with any other the stock
buffer stays. ``tests/unit/test_h11_buffer.py`` feeds the same answers, cut at random places,
through both buffers and requires the same events.
"""

from __future__ import annotations

import h11
from h11 import _connection
from h11._receivebuffer import ReceiveBuffer

WRITTEN_FOR = "0.16.0"


class PassThroughReceiveBuffer(ReceiveBuffer):
    # ``_data`` is ``bytes`` only while it holds exactly one piece as it was received.
    _data: bytes | bytearray  # type: ignore[assignment]

    def __iadd__(self, byteslike: bytes | bytearray) -> PassThroughReceiveBuffer:
        if not self._data and type(byteslike) is bytes:
            self._data = byteslike
            return self
        if type(self._data) is bytes:
            self._data = bytearray(self._data)
        self._data += byteslike
        return self

    def _extract(self, count: int) -> bytearray:
        # h11 edits the header lines it gets in place: they must be a bytearray's.
        if type(self._data) is bytes:
            self._data = bytearray(self._data)
        return super()._extract(count)

    def maybe_extract_at_most(self, count: int) -> bytearray | None:
        held = self._data
        if not held or count < len(held):
            # Nothing, or a part of what is held: h11's own way.
            if type(held) is bytes:
                self._data = bytearray(held)
            return super().maybe_extract_at_most(count)
        self._data = bytearray()
        self._next_line_search = 0
        self._multiple_lines_search = 0
        # A body piece: h11 returns it in a Data event, which httpcore turns into bytes.
        return held  # type: ignore[return-value]


def install() -> bool:
    """Make h11 connections use ``PassThroughReceiveBuffer``; False (and nothing changed) with
    an h11 other than ``WRITTEN_FOR``."""
    if h11.__version__ != WRITTEN_FOR:  # type: ignore[attr-defined]
        return False
    _connection.ReceiveBuffer = PassThroughReceiveBuffer  # type: ignore[attr-defined]
    return True
