"""Importing the handler module, as the Lambda runtime does during init, builds nothing.

Checked in a fresh interpreter with no IMAGEGW_* environment: the test process has already
imported Pillow and built apps, so only a new process shows what the import itself does. An audit
hook records the I/O the import performs beyond reading Python modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "functions" / "gateway"

PROBE = r"""
import json, os, sys

package_dir = os.path.realpath(sys.argv[1])
io_events = []

def audit(event, args):
    if event == "open":
        path, mode, flags = args
        writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
        writing = (mode is not None and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & writes
        )
        inside = isinstance(path, str) and os.path.realpath(path).startswith(package_dir)
        if writing or (inside and not path.endswith((".py", ".pyc"))):
            io_events.append(f"open {path} {mode} {flags}")
    elif event.startswith(("socket.", "os.mkdir", "os.remove", "os.rename", "shutil.")):
        io_events.append(f"{event} {args!r}"[:200])
    elif event in {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn"}:
        io_events.append(f"{event} {args!r}"[:200])

sys.addaudithook(audit)

import gc
import imagegw.entrypoints.handler
from imagegw.settings import get_settings

print(json.dumps({
    "adapter_is_none": imagegw.entrypoints.handler._adapter is None,
    "settings_cached": get_settings.cache_info().currsize,
    "modules": sorted(
        name
        for name in (
            "PIL", "boto3", "botocore", "httpx", "aws_lambda_powertools", "aws_xray_sdk",
            "pydantic.v1",
        )
        if name in sys.modules
    ),
    "io": io_events,
    "collector_enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "gateway_modules": sorted(name for name in sys.modules if name.startswith("imagegw.")),
}))
"""


def test_importing_the_handler_in_a_fresh_process_builds_nothing_and_does_no_io() -> None:
    environment = {
        "PYTHONPATH": str(PACKAGE_DIR),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": os.environ.get("PATH", ""),
    }
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(PACKAGE_DIR / "imagegw")],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["adapter_is_none"] is True
    assert report["settings_cached"] == 0
    assert "PIL" not in report["modules"]
    assert "boto3" not in report["modules"]
    assert "botocore" not in report["modules"]
    # Powertools is imported on the first invocation; the X-Ray SDK only with tracing on.
    assert "aws_lambda_powertools" not in report["modules"]
    assert "aws_xray_sdk" not in report["modules"]
    assert "httpx" not in report["modules"]  # loaded with the first upstream call
    # FastAPI's route analysis no longer imports it (fastpath/fastapi_routes.py).
    assert "pydantic.v1" not in report["modules"]
    assert report["io"] == []
    assert completed.stderr == ""
    # The collector is off while the handler's imports run and back on after them, with what
    # they made frozen (bench/RESULTS.md, round 6).
    assert report["collector_enabled"] is True
    assert report["frozen"] > 10_000
    # Modules that serve other routes than a cold start's first request load on first use.
    lazy = {
        "imagegw.api.progress_socket",
        "imagegw.api.realtime",
        "imagegw.generation.service",
        "imagegw.providers",
        "imagegw.schemas",
        "imagegw.state.jobs.model",
        "imagegw.state.usage",
        "imagegw.storage.presign",
        "imagegw.storage.uploads",
    }
    assert lazy.isdisjoint(report["gateway_modules"]), lazy & set(report["gateway_modules"])
