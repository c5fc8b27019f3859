"""A pytest plugin: no secret, key, signature or image bytes in any log line of the whole run.

Every log record of the session goes through the gateway's own JSON formatter (what CloudWatch
would receive: message, ``extra`` fields and tracebacks), and is searched for the suite's known
secrets and for shapes that must never be logged: client and provider keys (``sk-...``), link
signatures, presigned-URL signatures and credentials, and base64 image data (PNG, JPEG, WebP
headers). A hit fails the run at the end, naming the test and the logger, not the secret.

Records of the other ends of the wire (``support.leaks.OTHER_ENDS``: moto, the test's own HTTP
client) are left out, as in the per-test ``leak_watch``. A bug's traceback is logged on purpose
(operators need it); its text is the code's own.
Enabled from ``tests/conftest.py``; other layers' own log checks (AWS tests) are complementary.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from imagegw.logs import JsonFormatter

from support.leaks import OTHER_ENDS

# Literal secrets the suite configures (fixtures and fakes), and the shapes of any others.
KNOWN_SECRETS = (
    "test-signing-secret",
    "e2e-signing-secret",
    "SECRET-UPSTREAM-DETAIL",  # in the fake upstream's error bodies: never to be logged
)
PATTERNS = {
    "api key": re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    "bfl key": re.compile(r"\bbfl_[A-Za-z0-9_-]{8,}"),
    # BFL's image links are signed (Azure SAS ``sig=``): a leaked link is a usable one.
    "image link signature": re.compile(r"[?&]sig=[A-Za-z0-9%+/=]{4,}"),
    "link signature": re.compile(r"signature=[0-9a-f]{16,}"),
    "presigned URL signature": re.compile(r"X-Amz-(Signature|Credential|Security-Token)=", re.I),
    "bearer token": re.compile(r"Bearer\s+[A-Za-z0-9._-]{8,}"),
    # base64 of the first bytes of PNG, JPEG and WebP (RIFF....WEBP) files
    "base64 image": re.compile(r"iVBORw0KGgo|/9j/4AAQ|/9j/2wBD|UklGR[A-Za-z0-9+/]{5}XRUJQ"),
}


@dataclass(frozen=True)
class Leak:
    test: str
    logger: str
    what: str


class LogGuard(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.formatter_ = JsonFormatter()
        self.current_test = "(collection)"
        self.leaks: list[Leak] = []
        self.records = 0

    def filter(self, record: logging.LogRecord) -> bool:
        # Powertools' Logger puts a SuppressFilter for the package logger on every root handler
        # (its own handler writes those records); the guard must see them all the same.
        return True

    def emit(self, record: logging.LogRecord) -> None:
        # The other ends of the wire (fake AWS, the test's own HTTP client) see the request by
        # definition; the same exclusion as support/leaks.py.
        if record.name.split(".")[0] in OTHER_ENDS:
            return
        self.records += 1
        try:
            line = self.formatter_.format(record)
        except Exception as exc:  # a record that cannot even be formatted is a finding too
            line = f"unformattable record: {type(exc).__name__}"
        for what in find_leaks(line):
            self.leaks.append(Leak(self.current_test, record.name, what))


def find_leaks(line: str) -> list[str]:
    found = [f"known secret #{index}" for index, s in enumerate(KNOWN_SECRETS) if s in line]
    found.extend(name for name, pattern in PATTERNS.items() if pattern.search(line))
    return found


_GUARD = LogGuard()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(_GUARD)


def pytest_unconfigure(config: pytest.Config) -> None:
    logging.getLogger().removeHandler(_GUARD)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    # Put back on the root logger should a test (or a library it configured) have reset it.
    root = logging.getLogger()
    if _GUARD not in root.handlers:
        root.addHandler(_GUARD)
    _GUARD.current_test = item.nodeid
    try:
        return (yield)
    finally:
        _GUARD.current_test = "(between tests)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _GUARD.leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{leak.test}: logger {leak.logger!r} logged a {leak.what}" for leak in _GUARD.leaks]
    if reporter is not None:
        reporter.section("secrets in logs", sep="=", red=True)
        for line in sorted(set(lines)):
            reporter.line(line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
