"""Hypothesis on the headers the gateway reads: any value is an answer below 500 (issue 12).

The app is called as an ASGI server calls it, with the header bytes exactly as generated (HTTP
clients normalize or refuse many of them; uvicorn and API Gateway pass them on): Authorization,
Idempotency-Key, Prefer, Content-Type and Content-Length get any byte but CR, LF and NUL, huge
digit strings, and odd Unicode as its UTF-8 bytes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from conftest import API_KEY
from support.fakes import FakeClock, FakeProvider

BODY = b'{"model": "openai/gpt-image-1.5", "prompt": "a fox"}'
HEADERS = (b"authorization", b"idempotency-key", b"prefer", b"content-type", b"content-length")

header_value = st.one_of(
    st.binary(max_size=40).map(lambda raw: bytes(b for b in raw if b not in (0, 10, 13))),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20).map(
        lambda text: text.encode("utf-8").replace(b"\r", b"").replace(b"\n", b"")
    ),
    st.integers(min_value=1, max_value=6000).map(lambda digits: b"9" * digits),
    st.sampled_from([b"Bearer ", b"Bearer " + API_KEY.encode() + b"\xff", b"NaN", b"-1"]),
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    directory: Path = tmp_path_factory.mktemp("images")
    settings = Settings(api_keys=API_KEY, local_storage_dir=directory)
    runtime = Runtime(settings, providers={"openai": FakeProvider()}, clock=FakeClock())
    return create_app(runtime=runtime)


async def call(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/images/generations",
        "raw_path": b"/v1/images/generations",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
    }
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(HEADERS), value=header_value)
@example(name=b"content-length", value=b"9" * 5000)
@example(name=b"idempotency-key", value="café".encode())
@example(name=b"authorization", value=b"Bearer \xe9\xe9")
def test_any_header_value_is_answered_below_500(app: Any, name: bytes, value: bytes) -> None:
    headers = {
        b"authorization": b"Bearer " + API_KEY.encode(),
        b"content-type": b"application/json",
        b"content-length": str(len(BODY)).encode(),
    }
    headers[name] = value
    status, body = asyncio.run(call(app, list(headers.items())))
    assert status < 500, (name, value[:80], body[:300])
    if status >= 400:
        assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}
