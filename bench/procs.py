"""The processes of a benchmark: the fake upstream, the gateway under uvicorn, a moto server.

Each runs in its own process, as in production: the client (this process), the gateway and the
upstream never share a GIL, so none of them slows another down by more than the 2 cores do.
The gateway is started the way a container starts it (``uvicorn imagegw.entrypoints.app:create_app
--factory --host --port``), configured by environment only. Not with ``--fd``: uvicorn takes
such a socket for a Unix socket and so leaves Nagle's algorithm on, which adds the 40 ms of a
delayed ACK to every small response.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "functions" / "gateway"
UPSTREAM_KEY = "sk-bench-upstream"
CLIENT_KEY = "sk-bench-client"
MODEL = "openai/gpt-image-2.5-sunburst"
UPSTREAM_MODEL = "gpt-image-2.5-sunburst"
_START_TIMEOUT = 20.0

# The allocator setting of template.yaml's functions (a test holds the two equal).
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728"


# The gateway as this checkout serves it; bench/compare.py also starts an earlier revision's.
APP = "imagegw.entrypoints.app:create_app"


def child_environment(
    extra: Mapping[str, str] | None = None, *, package_dir: Path = PACKAGE_DIR
) -> dict[str, str]:
    """This environment without proxies or IMAGEGW_* settings, plus ``extra``; ``imagegw`` is
    imported from ``package_dir``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("IMAGEGW_")
        and name.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }
    environment["PYTHONPATH"] = os.pathsep.join([str(package_dir), str(REPO)])
    environment.update(extra or {})
    return environment


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Upstream:
    base_url: str  # ".../v1", as OpenAI clients take it
    pid: int


@contextlib.contextmanager
def upstream(image: Path, *, delay_ms: float = 0.0, size: str = "1024x896") -> Iterator[Upstream]:
    command = [sys.executable, "-m", "bench.upstream", "--image", str(image), "--size", size]
    command += ["--delay-ms", str(delay_ms)]
    process = subprocess.Popen(command, env=child_environment(), cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "PORT":
            raise RuntimeError("the fake upstream did not start")
        yield Upstream(f"http://127.0.0.1:{line[1]}/v1", process.pid)
    finally:
        _stop(process)


@dataclass(frozen=True)
class Gateway:
    base_url: str  # ".../v1"
    pid: int
    log: Path


def gateway_settings(upstream_url: str, storage_dir: Path) -> dict[str, str]:
    return {
        "IMAGEGW_API_KEYS": CLIENT_KEY,
        # As the template deploys it (and `make dev` runs it): glibc's thresholds raised.
        "GLIBC_TUNABLES": GLIBC_TUNABLES,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": upstream_url,
        "IMAGEGW_STORAGE": "local",
        "IMAGEGW_LOCAL_STORAGE_DIR": str(storage_dir),
        "IMAGEGW_URL_SIGNING_SECRET": "bench-signing-secret",
        # Container mode has no 6 MB Lambda limit: n = 10 in b64_json must stay inline.
        "IMAGEGW_MAX_RESPONSE_BYTES": str(256 * 1024 * 1024),
    }


@contextlib.contextmanager
def gateway(
    settings: Mapping[str, str], *, package_dir: Path = PACKAGE_DIR, app: str = APP
) -> Iterator[Gateway]:
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imagegw-bench-")))
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--backlog",
            "1024",
            # The concurrency benchmark opens its 64 connections before it uses them; on a busy
            # machine uvicorn's default 5 s keep-alive could close them first.
            "--timeout-keep-alive",
            "120",
        ]
        log = directory / "gateway.log"
        log_file = stack.enter_context(log.open("wb"))
        process = subprocess.Popen(
            command,
            env=child_environment(settings, package_dir=package_dir),
            cwd=directory,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop, process)
        base_url = f"http://127.0.0.1:{port}"
        _wait_healthy(base_url, process, log)
        yield Gateway(base_url + "/v1", process.pid, log)


def _wait_healthy(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(base_url + "/health", timeout=1, trust_env=False).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError("the gateway did not become healthy in time")


def rss_kib(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of ``pid`` in KiB, from /proc (Linux)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def reset_peak_rss(pid: int) -> None:
    """Make VmHWM start again from the current RSS (Linux >= 4.0, own processes)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


MOTO_PROBE = r"""
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("PORT", server.get_host_and_port()[1], flush=True)
while True:
    time.sleep(3600)
"""
S3_BUCKET = "imagegw-bench"
AWS_TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """A moto server in its own process with the benchmark's bucket; yields its endpoint URL."""
    import boto3  # only the S3 runs need it

    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_PROBE],
        env=child_environment(AWS_TEST_ENVIRONMENT),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().split()
        if len(line) != 2 or line[0] != "PORT":
            raise RuntimeError("the moto server did not start")
        endpoint = f"http://127.0.0.1:{line[1]}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=S3_BUCKET)
        yield endpoint
    finally:
        _stop(process)


def s3_settings(base: Mapping[str, str], endpoint: str) -> dict[str, str]:
    return {
        **base,
        **AWS_TEST_ENVIRONMENT,
        "IMAGEGW_STORAGE": "s3",
        "IMAGEGW_S3_BUCKET": S3_BUCKET,
        "AWS_ENDPOINT_URL": endpoint,
    }


def s3_store_available() -> bool:
    """Whether this checkout of the gateway has the S3 store (``IMAGEGW_STORAGE=s3``)."""
    return (PACKAGE_DIR / "imagegw" / "storage" / "s3.py").is_file()
