"""The speed tricks that replace a library's internals are written for the versions deployed.

Each one checks the installed version and stands aside for any other (the stock code serves,
correct and slower). So a pin moved in layers/deps/requirements.txt would silently turn one
off: this fails instead, until the trick is checked against the new version and its
``WRITTEN_FOR`` moved with the pin.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from imagegw.fastpath import fastapi_routes, h11_buffer, http_pool

REQUIREMENTS = Path(__file__).resolve().parents[2] / "layers" / "deps" / "requirements.txt"


def pinned() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_each_trick_is_written_for_the_pinned_and_installed_version() -> None:
    written_for = {
        **http_pool.WRITTEN_FOR,
        "h11": h11_buffer.WRITTEN_FOR,
        "fastapi": fastapi_routes.WRITTEN_FOR,
    }
    pins = pinned()
    for package, version in written_for.items():
        assert pins[package] == version, package
        assert metadata.version(package) == version, package
