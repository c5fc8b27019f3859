"""Load run for issue 7: the gateway under uvicorn, a fake upstream with injected faults.

    make load            # 2,000 requests, 50 concurrent, 5 % upstream faults
    .venv/bin/python bench/load.py --requests 4000 --concurrency 100 --write

The gateway runs as its own process
(``uvicorn imagegw.entrypoints.app:create_app --factory``), configured only by environment
variables, against the fake OpenAI upstream of the tests (real PNGs, real HTTP) on 127.0.0.1. A
seeded 5 % of upstream answers are faults: 500, a hang-up, a 429 (retried by the gateway), or an
answer slower than the gateway's budget. Some requests ask for
``response_format=url`` (each link is fetched), some carry an Idempotency-Key and some repeat one.

Checks: every status is an expected one (200, or the 502/504/429 a fault explains); every 200
holds exactly the images asked for, less those reported as filtered, each a decodable PNG; the
gateway's resident memory after warm-up does not grow by more than a small margin. With
``--write`` the figures replace the "## Load run (issue 7)" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.fake_openai import (  # noqa: E402
    Delay,
    Error,
    FakeOpenAI,
    Hangup,
    Images,
    Reply,
)

CLIENT_KEY = "sk-load-client-key"
UPSTREAM_KEY = "sk-load-upstream-key"
MODEL = "openai/gpt-image-2"
BUDGET_SECONDS = 4.0
EXPECTED = {200, 429, 502, 504}
SECTION = "## Load run (issue 7)"


class FaultyUpstream(FakeOpenAI):
    """The fake upstream, answering a seeded share of requests with a fault."""

    def __init__(self, fault_rate: float, seed: int, kinds: list[str]) -> None:
        super().__init__(expected_key=UPSTREAM_KEY)
        self._random = random.Random(seed)
        self._fault_rate = fault_rate
        self._kinds = kinds
        self.faults: Counter[str] = Counter()

    def _next_reply(self) -> Reply:
        with self._lock:
            if self._random.random() >= self._fault_rate:
                return Images()
            kind = self._random.choice(self._kinds)
            self.faults[kind] += 1
        if kind == "500":
            return Error(500, "The server had an error.", type="server_error")
        if kind == "hangup":
            return Hangup()
        if kind == "429":
            return Error(429, "Slow down.", type="requests", headers={"retry-after-ms": "50"})
        return Delay(BUDGET_SECONDS + 1.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_gateway(upstream: FakeOpenAI, port: int, storage: Path) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("IMAGEGW_", "OPENAI_"))},
        "PYTHONPATH": str(ROOT / "functions" / "gateway"),
        "IMAGEGW_API_KEYS": CLIENT_KEY,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": upstream.base_url,
        "IMAGEGW_UPSTREAM_TIMEOUT_SECONDS": str(BUDGET_SECONDS),
        "IMAGEGW_UPSTREAM_RETRY_BASE_SECONDS": "0.05",
        "IMAGEGW_LOCAL_STORAGE_DIR": str(storage),
        "IMAGEGW_URL_SIGNING_SECRET": "load-run-signing-secret",
        "IMAGEGW_LOG_LEVEL": "ERROR",
        # Small enough that the idempotency store is full during warm-up: growth after it would
        # then be a leak, not the store filling up to its bound.
        "IMAGEGW_IDEMPOTENCY_MEMORY_BYTES": str(2 * 1024 * 1024),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "imagegw.entrypoints.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the gateway did not start")


class Run:
    def __init__(self, base_url: str, seed: int) -> None:
        self.base_url = base_url
        self.random = random.Random(seed + 1)
        self.statuses: Counter[int] = Counter()
        self.codes: Counter[str] = Counter()
        self.problems: list[str] = []
        self.latencies: list[float] = []
        self.images = 0
        self.links = 0
        self.replays = 0
        self.fresh_errors: Counter[int] = Counter()  # errors not replayed from an earlier answer
        self.keys: list[tuple[str, dict[str, Any]]] = []

    def next_request(self, index: int) -> tuple[dict[str, Any], dict[str, str]]:
        headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
        draw = self.random.random()
        if draw < 0.05 and self.keys:  # repeat an earlier idempotent request
            key, body = self.random.choice(self.keys)
            return body, {**headers, "Idempotency-Key": key}
        fresh: dict[str, Any] = {
            "model": MODEL,
            "prompt": f"load test image {index}",
            "n": self.random.randint(1, 3),
            "size": "1024x1024",
        }
        if self.random.random() < 0.1:
            fresh["response_format"] = "url"
        if draw < 0.15:
            key = f"load-{index}"
            self.keys.append((key, fresh))
            headers["Idempotency-Key"] = key
        return fresh, headers

    async def one(self, client: httpx.AsyncClient, index: int) -> None:
        body, headers = self.next_request(index)
        started = time.perf_counter()
        try:
            response = await client.post("/v1/images/generations", json=body, headers=headers)
        except httpx.TransportError as exc:
            self.problems.append(f"request {index}: no answer ({type(exc).__name__})")
            self.statuses[0] += 1
            return
        self.latencies.append(time.perf_counter() - started)
        self.statuses[response.status_code] += 1
        replayed = response.headers.get("idempotent-replayed") == "true"
        self.replays += replayed
        if response.status_code not in EXPECTED:
            self.problems.append(f"request {index}: unexpected {response.status_code}")
            return
        if response.status_code != 200:
            self.codes[response.json()["error"]["code"]] += 1
            if not replayed:
                self.fresh_errors[response.status_code] += 1
            return
        await self.check_images(client, index, body, response.json())

    async def check_images(
        self, client: httpx.AsyncClient, index: int, body: dict[str, Any], answer: dict[str, Any]
    ) -> None:
        expected = body["n"] - answer.get("images_filtered", 0)
        if len(answer["data"]) != expected:
            self.problems.append(f"request {index}: {len(answer['data'])} images, {expected} due")
        for item in answer["data"]:
            if "url" in item:
                fetched = await client.get(item["url"])
                self.links += 1
                if fetched.status_code != 200:
                    self.problems.append(f"request {index}: link answered {fetched.status_code}")
                    continue
                data = fetched.content
            else:
                data = base64.b64decode(item["b64_json"], validate=True)
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image.verify()
                self.images += 1
            except Exception as exc:
                self.problems.append(f"request {index}: undecodable image ({exc})")


async def drive(run: Run, start: int, count: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=run.base_url, timeout=30, limits=limits) as client:
        queue = iter(range(start, start + count))

        async def worker() -> None:
            for index in queue:
                await run.one(client, index)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", default="500,hangup,429,slow", help="kinds to inject")
    parser.add_argument("--max-growth-mib", type=float, default=15.0)
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    arguments = parser.parse_args()

    storage = Path(os.environ.get("TMPDIR", "/tmp")) / f"imagegw-load-{os.getpid()}"
    upstream = FaultyUpstream(arguments.fault_rate, arguments.seed, arguments.faults.split(","))
    upstream.start()
    port = free_port()
    gateway = start_gateway(upstream, port, storage)
    run = Run(f"http://127.0.0.1:{port}", arguments.seed)
    try:
        started = time.perf_counter()
        asyncio.run(drive(run, 0, arguments.warmup, arguments.concurrency))
        warm_rss = rss_kib(gateway.pid)
        samples = [warm_rss]
        rest = arguments.requests - arguments.warmup
        step = max(1, rest // 4)
        for offset in range(0, rest, step):
            asyncio.run(
                drive(
                    run, arguments.warmup + offset, min(step, rest - offset), arguments.concurrency
                )
            )
            samples.append(rss_kib(gateway.pid))
        elapsed = time.perf_counter() - started
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
        upstream.stop()

    growth_mib = (samples[-1] - warm_rss) / 1024
    if growth_mib > arguments.max_growth_mib:
        run.problems.append(f"memory grew {growth_mib:.1f} MiB after warm-up")
    # Every error is explained by an injected fault, and only replays skip the upstream.
    faults = upstream.faults
    explained = {502: faults["500"] + faults["hangup"], 504: faults["slow"], 429: 0}
    for status, count in explained.items():
        if run.fresh_errors[status] != count:
            run.problems.append(f"{run.fresh_errors[status]} x {status}, {count} explained")
    calls = arguments.requests - run.replays + faults["429"]
    if len(upstream.requests) != calls:
        run.problems.append(f"{len(upstream.requests)} upstream requests, {calls} expected")
    total = sum(run.statuses.values())
    if total != arguments.requests:
        run.problems.append(f"{total} answers for {arguments.requests} requests")
    latencies = sorted(run.latencies)
    report = [
        SECTION,
        "",
        f"`make load` on {time.strftime('%Y-%m-%d')} ({os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}): {arguments.requests} requests, {arguments.concurrency} "
        f"concurrent, {arguments.fault_rate:.0%} upstream faults (seed {arguments.seed}), "
        f"`{MODEL}` 1024x1024, n = 1..3, gateway budget {BUDGET_SECONDS:g} s.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| wall time | {elapsed:.1f} s ({total / elapsed:.0f} requests/s) |",
        f"| statuses | {', '.join(f'{s}: {c}' for s, c in sorted(run.statuses.items()))} |",
        f"| error codes | {', '.join(f'{k}: {c}' for k, c in sorted(run.codes.items())) or '-'} |",
        f"| upstream faults injected | "
        f"{', '.join(f'{k}: {c}' for k, c in sorted(upstream.faults.items()))} |",
        f"| upstream requests | {len(upstream.requests)} |",
        f"| images checked (decoded) | {run.images}, of which {run.links} fetched through links |",
        f"| idempotent replays | {run.replays} |",
        f"| latency p50 / p95 / max | {statistics.median(latencies) * 1000:.0f} / "
        f"{latencies[int(len(latencies) * 0.95)] * 1000:.0f} / {latencies[-1] * 1000:.0f} ms |",
        f"| gateway RSS after warm-up -> end | {warm_rss / 1024:.1f} -> "
        f"{samples[-1] / 1024:.1f} MiB (samples: "
        f"{', '.join(f'{s / 1024:.1f}' for s in samples)}) |",
        f"| problems | {len(run.problems)} |",
        "",
        "Checked by the script: every status is 200 or an error an injected fault explains (each "
        "502 an injected 500 or hang-up, each 504 an answer slower than the budget, never "
        "retried); every injected 429 was retried by the gateway and none reached a caller; "
        "upstream requests = requests - idempotent replays + retried 429s (no replay called the "
        "upstream); every 200 holds exactly n images less those reported filtered, each decoded "
        "(links fetched); resident memory after warm-up grows by less than "
        f"{arguments.max_growth_mib:g} MiB (one kept answer per request would be tens of MiB; "
        "the in-memory idempotency store is capped at 2 MiB for this run so that it is full "
        "before warm-up ends).",
        "",
    ]
    print("\n".join(report))
    for problem in run.problems[:20]:
        print("PROBLEM:", problem)
    if arguments.write:
        record(report)
    return 1 if run.problems else 0


def record(report: list[str]) -> None:
    results = ROOT / "bench" / "RESULTS.md"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    section = "\n".join(report)
    if SECTION in text:
        before, _, after = text.partition(SECTION)
        rest = after.split("\n## ", 1)
        tail = "\n## " + rest[1] if len(rest) == 2 else ""
        text = before + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
