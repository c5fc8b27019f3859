"""The allocator setting (GLIBC_TUNABLES) is the same everywhere it is set, and glibc obeys it.

glibc ignores a tunable it does not know without a word, so a misspelt name would silently cost
every request its page faults again: the second test runs a child process with and without the
setting and counts the faults of reallocating a large buffer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from bench.procs import GLIBC_TUNABLES

ROOT = Path(__file__).resolve().parents[2]
# One request's buffers, 20 times: the body as read (a little larger each time), a copy of it
# (decoded or joined), the response; all freed before the next.
CHILD = """
import json, resource
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
MB = 1024 * 1024
before = faults()
for i in range(20):
    body = bytearray(2 * MB + i * 4096)
    copy = bytes(body)
    response = bytearray(3 * MB)
    del body, copy, response
print(json.dumps(faults() - before))
"""


def test_the_template_the_makefile_and_the_benchmarks_set_the_same_thresholds() -> None:
    template = (ROOT / "template.yaml").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.findall(r"GLIBC_TUNABLES: (\S+)", template) == [GLIBC_TUNABLES]
    assert re.findall(r"GLIBC_TUNABLES_SETTING := (\S+)", makefile) == [GLIBC_TUNABLES]


def _faults(tunables: str) -> int:
    env = {**os.environ, "GLIBC_TUNABLES": tunables}
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    count: int = json.loads(out.stdout)
    return count


def test_glibc_keeps_large_buffers_with_the_setting() -> None:
    with_setting, defaults = _faults(GLIBC_TUNABLES), _faults("")
    # Defaults: the buffers are fresh mappings or a trimmed heap top, faulted in each time
    # (about 34,000 here); with the setting glibc reuses the heap (about 2,300).
    assert defaults > 10_000
    assert with_setting < defaults / 5
