"""The allocator setting: large buffers freed by one request are reused by the next one."""

from __future__ import annotations

import os
import resource

from imagegw.fastpath.allocator import keep_large_buffers


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):
        return False


def test_large_buffers_are_reused_without_new_page_faults() -> None:
    if not _glibc():
        assert keep_large_buffers() is False
        return
    assert keep_large_buffers() is True
    assert keep_large_buffers() is True  # once per process, then remembered
    size = 4 * 1024 * 1024  # above glibc's default mmap threshold

    def one_request() -> None:
        # Zero-filled, so every page is touched; freed together, as at the end of a request.
        buffers = [bytearray(size) for _ in range(4)]
        del buffers

    one_request()  # the first one may grow the heap
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        one_request()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # With glibc's defaults the heap is trimmed (or the buffers unmapped) after each round and
    # the 20 rounds fault about 80,000 times (4 MiB = 1,024 pages, 4 buffers, 20 rounds).
    assert faults < 2_000, faults
