"""Check, under python3.12, that every module of a built artifact has a .pyc Lambda will use.

For each ``.py`` under the given roots: ``__pycache__/<name>.cpython-312.pyc`` exists, carries
this interpreter's magic number, is hash-based with source checking off (flags == 1:
``compileall --invalidation-mode unchecked-hash``; its validity cannot depend on file dates, which
SAM's ZIP resets to 1980), and its hash is the source's. Prints a JSON report.

Usage: check_bytecode.py ROOT [ROOT ...]
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

UNCHECKED_HASH = 0b01  # PEP 552: bit 0 hash-based, bit 1 check_source


def problems_of(source: Path) -> str | None:
    cached = Path(importlib.util.cache_from_source(str(source)))
    if not cached.is_file():
        return "no .pyc"
    header = cached.read_bytes()[:16]
    if header[:4] != importlib.util.MAGIC_NUMBER:
        return "another Python's .pyc"
    flags = int.from_bytes(header[4:8], "little")
    if flags != UNCHECKED_HASH:
        return f"flags {flags:#x}, not unchecked-hash"
    if header[8:16] != importlib.util.source_hash(source.read_bytes()):
        return "hash of another source"
    return None


def main(roots: list[str]) -> None:
    checked = 0
    problems: dict[str, str] = {}
    for root in roots:
        for source in sorted(Path(root).rglob("*.py")):
            checked += 1
            problem = problems_of(source)
            if problem:
                problems[str(source)] = problem
    json.dump({"checked": checked, "problems": problems}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
