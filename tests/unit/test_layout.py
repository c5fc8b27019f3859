"""The README's Layout section names every package of the gateway, and only packages that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "functions/gateway/imagegw"


def _layout_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Layout\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else len(readme)]


def test_the_layout_section_names_exactly_the_packages() -> None:
    named = set(re.findall(r"`imagegw/([a-z_/]+)/`", _layout_section()))
    actual = {
        str(init.parent.relative_to(PACKAGE))
        for init in PACKAGE.rglob("__init__.py")
        if init.parent != PACKAGE and "__pycache__" not in init.parts
    }
    assert sorted(actual - named) == [], "packages missing from the README's Layout section"
    assert sorted(named - actual) == [], (
        "the README's Layout section names packages that do not exist"
    )


def test_the_layout_section_names_every_core_module() -> None:
    core = {path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py"}
    named = set(re.findall(r"`([a-z_]+\.py)`", _layout_section()))
    assert sorted(core - named) == []


def test_every_document_the_readme_links_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(((?:docs|bench|functions)/[^)#]+)", readme):
        assert (ROOT / target).exists(), target
