"""Checks that nothing sensitive reaches a log line or the process's output.

Tests register what must never appear (secret values, API keys, the ``X-Amz-Signature`` of every
URL they were given, the base64 of every image) and the ``leak_watch`` fixture scans every log
record of the test, formatted by the gateway's own JSON formatter (message, ``extra`` fields,
exception text), with the root logger at DEBUG.

Left out are records that stand for the other ends of the wire, which of course see the
request: the fake AWS (moto, its ``responses`` interception, the werkzeug server of
``ThreadedMotoServer``) and the caller (``httpx2``, the transport of Starlette's TestClient,
logs the URLs the test fetches). Everything the gateway, botocore, urllib3, httpx (the
gateway's upstream client), uvicorn or Mangum emits is scanned.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

from imagegw.logs import JsonFormatter

OTHER_ENDS = ("moto", "responses", "werkzeug", "httpx2")


def signature_of(url: str) -> str:
    """The ``X-Amz-Signature`` of a presigned URL (the part that grants access)."""
    values = parse_qs(urlsplit(url).query).get("X-Amz-Signature")
    assert values, f"not a SigV4 presigned URL: {url.split('?', 1)[0]}"
    return values[0]


class LeakWatch:
    def __init__(self) -> None:
        self._needles: dict[str, str] = {}

    def secret(self, *values: str, what: str = "secret") -> None:
        for value in values:
            assert len(value) >= 8, "too short to search for without false alarms"
            self._needles[value] = what

    def url(self, url: str) -> None:
        self.secret(signature_of(url), what="presigned URL signature")

    def image(self, data: bytes) -> None:
        encoded = base64.b64encode(data).decode("ascii")
        # The whole base64 and a slice of it: a log line might carry a truncated copy.
        self.secret(encoded, what="image base64")
        self.secret(encoded[: min(48, len(encoded))], what="image base64 (prefix)")

    @property
    def watched(self) -> int:
        return len(self._needles)

    def findings(self, texts: Iterable[str]) -> list[str]:
        found = []
        for text in texts:
            for needle, what in self._needles.items():
                if needle in text:
                    found.append(f"{what} in: {text[:300]}")
        return found

    def assert_clean(self, texts: Iterable[str]) -> None:
        findings = self.findings(texts)
        assert not findings, "\n".join(findings)


def formatted(records: Iterable[logging.LogRecord]) -> list[str]:
    formatter = JsonFormatter()
    return [
        formatter.format(record) for record in records if not record.name.startswith(OTHER_ENDS)
    ]
