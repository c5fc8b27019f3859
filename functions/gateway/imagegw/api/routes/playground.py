"""``GET /playground``: a page for people to try the API in a browser (``IMAGEGW_PLAYGROUND``).

Plain static files (HTML, one script, one stylesheet; no build step) under a strict
Content-Security-Policy: scripts and styles from this origin only, no inline code, no frames,
no forms posting anywhere, Trusted Types required. The page calls the API with a key the user
types; the key lives in the page's memory only (never a cookie, the URL or storage), and the
page itself needs no key. Only the files listed here are served: no path reaches the disk.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from imagegw.errors import NotFound

router = APIRouter(tags=["playground"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static" / "playground"
FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# Images come back inline (drawn from blob: URLs), from this origin (local links) or from a
# bucket's presigned https URL; the API is this origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data: https:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _file(name: str) -> Response:
    media_type = FILES.get(name)
    if media_type is None:
        raise NotFound(f"Unknown URL: GET /playground/{name}.", code="unknown_url")
    return Response(content=_read(name), media_type=media_type, headers=HEADERS)


# Sync routes: FastAPI runs them in its thread pool, so reading a file never blocks the loop.
@router.get("/playground")
def page() -> Response:
    return _file("index.html")


@router.get("/playground/")
def page_with_slash() -> RedirectResponse:
    # The page's links are relative to /playground (so they work under an API stage prefix).
    return RedirectResponse("../playground", status_code=308)


@router.get("/playground/{name}")
def asset(name: str) -> Response:
    return _file(name)
