"""Security checks over HTTP that the auth and link tests do not already make.

Key comparison: its timing cannot depend on how much of a key matched, because ``identify``
hashes the presented key to a fixed-length digest and compares it with *every* stored digest
through ``hmac.compare_digest``, without stopping at a match. That is checked structurally (every
comparison is counted and its operands measured), not by timing, which would be flaky.
Signed local links: a signature moved to another image, or kept while ``expires`` is extended,
is refused; no link reaches a file outside the store.
"""

from __future__ import annotations

import hmac
import types
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from api_support import GENERATIONS, assert_error
from fastapi.testclient import TestClient

from imagegw.errors import AuthenticationFailed
from imagegw.state import auth
from imagegw.state.auth import ApiKeyRecord, hash_key, identify

from conftest import AUTH

KEYS = [f"sk-key-{index:02d}-{'abcdefghij' * 3}" for index in range(40)]
RECORDS = [
    ApiKeyRecord(name=f"key-{index}", sha256=hash_key(key), scopes=frozenset({"*"}))
    for index, key in enumerate(KEYS)
]


class Comparisons:
    def __init__(self) -> None:
        self.operands: list[tuple[int, int]] = []

    def compare_digest(self, a: bytes, b: bytes) -> bool:
        self.operands.append((len(a), len(b)))
        return hmac.compare_digest(a, b)


@pytest.mark.parametrize(
    "presented",
    [
        KEYS[0],  # matches the first record
        KEYS[20],  # matches one in the middle
        KEYS[-1],  # matches the last
        KEYS[5][:-1] + "X",  # all but the last character right
        KEYS[5][:8],  # a prefix
        "sk-" + "z" * 200,  # nothing right, much longer
        "x",
    ],
    ids=["first", "middle", "last", "one-char-off", "prefix", "long-wrong", "short-wrong"],
)
def test_every_key_check_compares_every_record_at_full_length(
    monkeypatch: pytest.MonkeyPatch, presented: str
) -> None:
    comparisons = Comparisons()
    monkeypatch.setattr(
        auth, "hmac", types.SimpleNamespace(compare_digest=comparisons.compare_digest)
    )
    try:
        principal = identify(presented, RECORDS)
    except AuthenticationFailed:
        assert presented not in KEYS
    else:
        assert principal.name == f"key-{KEYS.index(presented)}"
    # As many comparisons as records, whether and where it matched; always 64 hex digits each.
    assert len(comparisons.operands) == len(RECORDS)
    assert set(comparisons.operands) == {(64, 64)}


def _link(client: TestClient) -> tuple[str, str, str]:
    response = client.post(
        GENERATIONS,
        json={
            "model": "local/sketch",
            "prompt": "a fox",
            "size": "256x256",
            "n": 2,
            "response_format": "url",
        },
        headers=AUTH,
    )
    first, second = (item["url"] for item in response.json()["data"])
    return first, second, urlsplit(first).path


def test_a_signature_moved_to_another_image_is_refused(client: TestClient) -> None:
    first, second, _ = _link(client)
    query = urlsplit(first).query
    moved = urlsplit(second)._replace(query=query).geturl()
    assert_error(client.get(moved), 403, code="invalid_link")


def test_extending_the_expiry_breaks_the_signature(client: TestClient) -> None:
    first, _, path = _link(client)
    params = parse_qs(urlsplit(first).query)
    longer = (
        f"{path}?expires={int(params['expires'][0]) + 86400}&signature={params['signature'][0]}"
    )
    assert_error(client.get(longer), 403, code="invalid_link")


@pytest.mark.parametrize(
    "name",
    [
        "..%2f..%2fsecret.txt",
        "%2e%2e%2fsecret.txt",
        "secret.txt",
        "....png",
        "0123456789abcdef0123456789abcdef.png%00.txt",
    ],
)
def test_links_never_reach_outside_the_store(client: TestClient, tmp_path: Path, name: str) -> None:
    (tmp_path / "secret.txt").write_text("not an image")
    response = client.get(f"/v1/images/files/{name}?expires=9999999999&signature=00")
    assert response.status_code in (403, 404)
    assert b"not an image" not in response.content
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
