"""The log guard itself (support/log_guard.py) can fail: it recognises what must not be logged."""

from __future__ import annotations

import base64
import logging

import pytest

from support.fakes import TINY_PNG
from support.log_guard import _GUARD, find_leaks


@pytest.mark.parametrize(
    ("line", "what"),
    [
        ('{"message": "key sk-imagegw-abcdefgh12345678"}', "api key"),
        ("GET /v1/images/files/x.png?expires=1&signature=" + "ab" * 32, "link signature"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Signature=abc", "presigned URL signature"),
        ("Authorization: Bearer abcdefgh12345678", "bearer token"),
        (base64.b64encode(TINY_PNG).decode(), "base64 image"),
        ("the upstream said SECRET-UPSTREAM-DETAIL", "known secret #2"),
    ],
)
def test_what_must_not_be_logged_is_found(line: str, what: str) -> None:
    assert what in find_leaks(line)


@pytest.mark.parametrize(
    "line",
    [
        '{"message": "POST /v1/images/generations 200", "client": "team-a"}',
        '{"message": "request failed: invalid_api_key (no cause)", "status": 401}',
        '{"message": "retrying upstream call", "error_code": "rate_limit_exceeded"}',
    ],
)
def test_ordinary_log_lines_pass(line: str) -> None:
    assert find_leaks(line) == []


def test_the_guard_sees_the_gateways_records() -> None:
    before = _GUARD.records
    logging.getLogger("imagegw.test").warning("a record the guard must see")
    assert _GUARD.records == before + 1
