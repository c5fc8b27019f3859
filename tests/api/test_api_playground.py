"""The playground's static files: off unless switched on, served with a strict CSP, nothing else
reachable. The page itself is exercised in a real browser in tests/e2e/test_playground_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from api_support import assert_error, client_for

from imagegw.api.routes.playground import STATIC
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings


def test_the_playground_is_off_unless_switched_on(settings: Settings) -> None:
    assert Settings().playground is False
    with client_for(Runtime(settings)) as client:
        assert_error(client.get("/playground"), 404, code="unknown_url")


def test_the_page_and_its_files_carry_a_strict_policy(tmp_path: Path) -> None:
    runtime = Runtime(Settings(api_keys="sk-x", playground="true", local_storage_dir=tmp_path))
    with client_for(runtime) as client:
        for path, media_type in (
            ("/playground", "text/html"),
            ("/playground/app.js", "text/javascript"),
            ("/playground/style.css", "text/css"),
        ):
            response = client.get(path)  # no key: the page is public, the API is not
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(media_type)
            policy = response.headers["content-security-policy"]
            assert "script-src 'self';" in policy
            assert "style-src 'self';" in policy
            assert "default-src 'none'" in policy
            assert "require-trusted-types-for 'script'" in policy
            assert "unsafe-inline" not in policy
            assert "unsafe-eval" not in policy
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
        moved = client.get("/playground/", follow_redirects=False)
        assert moved.status_code == 308
        assert moved.headers["location"] == "../playground"
        for name in ("index.htm", "..%2Fapp.py", "%2e%2e", "models.toml"):
            assert_error(client.get(f"/playground/{name}"), 404, code="unknown_url")


def test_the_page_has_no_inline_code() -> None:
    html = (STATIC / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts
    assert all(" src=" in tag for tag in scripts)
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert "javascript:" not in html
    source = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source
    for storage in ("localStorage", "sessionStorage", "document.cookie", "indexedDB"):
        assert storage not in source  # the key stays in the page's memory
