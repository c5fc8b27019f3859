"""Memory stays bounded whatever an upstream declares (issue 12).

Measured in a fresh Python process (its peak RSS, ``VmHWM``, is its own): the provider calls a
hostile upstream that declares a gigabyte and sends ten bytes, or a gzip bomb. A warm-up call
first loads every code path the measured call takes, so the growth measured is the answer's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.hostile_upstream import (
    BOMB_BYTES,
    GIB,
    HostileUpstream,
    answer,
    gzip_bomb,
)

ROOT = Path(__file__).resolve().parents[2]
# "A few MiB": what one call costs besides its answer (the measured growth today is well
# below 1 MiB; a preallocated answer would be 1024).
ALLOWED_GROWTH_KIB = 6 * 1024

SCRIPT = r"""
import asyncio, json, sys
from imagegw.catalog import load_catalog
from imagegw.errors import GatewayError
from imagegw.fastpath.http_pool import upstream_client
from imagegw.providers.base import ImageRequest
from imagegw.providers.openai import OpenAIProvider

origin, cap = sys.argv[1], sys.argv[2]
which = sys.argv[3] if len(sys.argv) > 3 else "openai"
model = {"openai": "openai/gpt-image-1.5", "bedrock": "bedrock/stable-image-core"}[which]
spec = load_catalog().get(model)


def provider_for(http, base_url):
    if which == "bedrock":
        from botocore.credentials import Credentials
        from imagegw.providers.bedrock.provider import BedrockProvider

        credentials = Credentials("AKIAMEMORYTEST000001", "memory-test-secret-0123456789")
        return BedrockProvider(http, "us-west-2", endpoint=base_url, credentials=credentials)
    return OpenAIProvider(http, api_key="sk-memory-test-0123456789", base_url=base_url)


def peak_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])


async def call(path):
    request = ImageRequest(
        spec=spec, upstream_model=spec.upstream_model, prompt="a fox", n=1,
        timeout_seconds=20, max_answer_bytes=None if cap == "derived" else int(cap),
    )
    async with upstream_client() as http:
        provider = provider_for(http, origin + path)
        try:
            await provider.generate(request)
        except GatewayError as error:
            return error.status, error.code
    return 200, None

warm = asyncio.run(call("/warm"))
before = peak_kib()
measured = asyncio.run(call("/measured"))
after = peak_kib()
print(json.dumps({"warm": warm, "measured": measured, "growth_kib": after - before}))
"""


def measure(upstream: HostileUpstream, cap: str, provider: str = "openai") -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions" / "gateway")}
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, upstream.origin, cap, provider],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def by_path(warm: bytes, measured: bytes, *, status: int = 200, **headers: str) -> object:
    """An abuse that answers the warm-up call small and the measured call hostile."""

    def write(sock, request, server):  # type: ignore[no-untyped-def]
        hostile = b" /measured/" in request.head.split(b"\r\n", 1)[0] + b"/"
        body, declared = (measured, str(GIB)) if hostile else (warm, "20")
        answer(body, status=status, declared=declared, headers=headers)(sock, request, server)

    return write


@pytest.mark.parametrize(
    "cap",
    [
        # The operator's cap above a gigabyte: only the buffer's growth is on trial.
        pytest.param(str(2 * GIB), id="cap-above-the-declared-length"),
        # The cap derived from the request (about 11 MiB): refused before any byte is read.
        pytest.param("derived", id="derived-cap"),
    ],
)
def test_a_gigabyte_declared_and_ten_bytes_sent_costs_no_memory(cap: str) -> None:
    with HostileUpstream() as upstream:
        upstream.abuse = by_path(b'{"data": [', b'{"data": [')  # type: ignore[assignment]
        result = measure(upstream, cap)
    assert result["measured"][0] == 502  # type: ignore[index]
    assert result["growth_kib"] <= ALLOWED_GROWTH_KIB, result  # type: ignore[operator]


def test_a_gzip_bomb_is_cut_off_at_the_cap() -> None:
    bomb = gzip_bomb(BOMB_BYTES)

    def write(sock, request, server):  # type: ignore[no-untyped-def]
        hostile = b" /measured/" in request.head.split(b"\r\n", 1)[0] + b"/"
        body = bomb if hostile else gzip_bomb(1024 * 1024)[:64]
        answer(body, headers={"Content-Encoding": "gzip"})(sock, request, server)

    with HostileUpstream() as upstream:
        upstream.abuse = write
        result = measure(upstream, "derived")
    assert result["measured"] == [502, "upstream_bad_response"], result
    # The answer is cut where it crosses the cap (about 11 MiB for one gpt-image-1.5 image),
    # never inflated to its 64 MiB.
    assert result["growth_kib"] <= 11.5 * 1024 + ALLOWED_GROWTH_KIB, result  # type: ignore[operator]


@pytest.mark.parametrize("status", [200, 500])
def test_bedrock_reads_a_gigabyte_declared_answer_or_error_with_no_memory(status: int) -> None:
    """Bedrock's answers, errors included, are read by the same reader (botocore read an
    error body whole)."""
    with HostileUpstream() as upstream:
        upstream.abuse = by_path(b'{"message": "', b'{"message": "', status=status)  # type: ignore[assignment]
        result = measure(upstream, str(2 * GIB), "bedrock")
    assert result["measured"][0] == 502, result  # type: ignore[index]
    assert result["growth_kib"] <= ALLOWED_GROWTH_KIB, result  # type: ignore[operator]
