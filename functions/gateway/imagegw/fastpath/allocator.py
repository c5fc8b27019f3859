"""Keep glibc from handing multi-megabyte buffers back to the kernel after every request.

A generation moves several copies of a megabytes-long base64 body through the process (socket
reads, the upstream body, the JSON parse, the response). glibc serves each allocation above its
mmap threshold (128 KiB at first) with a fresh ``mmap`` and unmaps it on free, and trims the
top of the heap as soon as 128 KiB are free there; either way the next request touches new
pages, and a page fault costs microseconds in a VM (Lambda's Firecracker included). Measured
with bench/ (one 2 MB image per request): about 1,900 minor faults and 6 ms of system time per
request, 40% of the gateway's CPU. With large buffers kept in the heap and the heap kept, the
same requests take 25 faults and 1 ms.

The cost is resident memory that stays at the process's high-water mark instead of shrinking
after a large response, which a process serving one request at a time (Lambda) or a steady
stream of them (a container) reaches again soon anyway. Applied once, on the first upstream
call (``Runtime.http``): GET /v1/models and health checks never load ctypes. Other C libraries
(musl, macOS) are left alone.
"""

from __future__ import annotations

import os
import sys

# mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's ceiling for the mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 128 * 1024 * 1024

_tuned: bool | None = None


def keep_large_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds, once per process; True when they were set."""
    global _tuned
    if _tuned is None:
        _tuned = _mallopt()
    return _tuned


def _mallopt() -> bool:
    if not sys.platform.startswith("linux") or not _glibc():
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error (a value out of range).
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):  # not a glibc system: the name is unknown here
        return False
