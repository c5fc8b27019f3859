"""X-Ray through Powertools Tracer: segments as the X-Ray daemon receives them (UDP).

Runs in a fresh interpreter: the tracer patches httpx and botocore process-wide, which must not
leak into the other tests. A UDP socket on 127.0.0.1 stands in for the daemon.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, os, socket, sys
sys.path.insert(0, sys.argv[1])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.settimeout(0.5)
os.environ["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:%d" % sock.getsockname()[1]
import imagegw.entrypoints.handler
from lambda_harness import FakeLambdaContext, load_event
event = load_event("function-url-generate")
response = imagegw.entrypoints.handler.handler(event, FakeLambdaContext())
documents = []
while True:
    try:
        data = sock.recv(65535)
    except socket.timeout:
        break
    header, _, body = data.decode().partition("\n")
    documents.append({"header": json.loads(header), "segment": json.loads(body)})
print(json.dumps({"status": response["statusCode"], "body": response["body"], "sent": documents}))
"""


def test_tracing_sends_annotated_subsegments_without_bodies(tmp_path: Path) -> None:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO / "functions" / "gateway"),
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_LAMBDA_FUNCTION_NAME": "imagegw-dev-GatewayFunction",
        "AWS_DEFAULT_REGION": "us-east-1",
        "_X_AMZN_TRACE_ID": "Root=1-5e66d96f-7491f09a79d18acf3d050000;Parent=53995c3f42cd8ad8;"
        "Sampled=1",
        "IMAGEGW_TRACING": "true",
        "IMAGEGW_API_KEYS": "sk-imagegw-dev",
        "IMAGEGW_LOCAL_STORAGE_DIR": str(tmp_path),
    }
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "tests" / "lambda")],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    segments = {doc["segment"]["name"]: doc["segment"] for doc in report["sent"]}
    assert all(doc["header"] == {"format": "json", "version": 1} for doc in report["sent"])

    upstream = segments["upstream"]
    assert upstream["annotations"] == {"provider": "local", "model": "local/sketch"}
    assert upstream["trace_id"] == "1-5e66d96f-7491f09a79d18acf3d050000"
    handler = segments["## dispatch"]
    assert handler["annotations"]["Service"] == "imagegw"
    # capture_response=False: the answer (images, links) is not recorded.
    assert "metadata" not in handler
    sent = json.dumps(report["sent"])
    assert "a red bicycle" not in sent
    assert json.loads(report["body"])["data"][0]["b64_json"][:20] not in sent
