"""AWS clients are cheap after the first: the service models are parsed once per process.

The URL signer makes an S3 client per set of assumed-role credentials (with a one-hour lifetime,
per link). Checked in a fresh interpreter, where an audit hook sees every file botocore opens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "functions" / "gateway"

PROBE = r"""
import json, sys
opened = []
sys.addaudithook(
    lambda event, args: opened.append(str(args[0]))
    if event == "open" and "botocore" in str(args[0]) and "/data/" in str(args[0]) else None
)
from imagegw.storage.presign import sts_client
from imagegw.storage.s3 import s3_client

s3_client()
first = len(opened)
for index in range(3):
    s3_client(credentials={
        "aws_access_key_id": f"ASIA{index}", "aws_secret_access_key": "s", "aws_session_token": "t"
    })
again = len(opened) - first
sts_client()
before = len(opened)
sts_client()
print(json.dumps({"first": first, "again": again, "second_sts": len(opened) - before}))
"""


def test_service_models_are_read_once_per_process(tmp_path: Path) -> None:
    environment = {
        "PYTHONPATH": str(PACKAGE_DIR),
        "PATH": os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["first"] > 0  # the probe does see botocore's data files
    assert report["again"] == 0
    assert report["second_sts"] == 0
