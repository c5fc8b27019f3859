"""The gateway's logging setup keeps AWS SDK wire logs out, whatever the root level says."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagegw.logs import configure_logging
from imagegw.storage.s3 import s3_client

from support.leaks import signature_of


def test_a_debug_root_logger_does_not_get_botocores_signatures_or_keys(
    aws_environment: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Lambda's log-level setting can put the root logger at DEBUG; botocore would then log
    every signature it computes (and request/response bodies: secret values, image bytes)."""
    configure_logging("INFO")
    caplog.set_level(logging.DEBUG)

    url = s3_client("eu-west-1").generate_presigned_url(
        "get_object", Params={"Bucket": "imagegw-logs", "Key": "images/a.png"}, ExpiresIn=60
    )

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert signature_of(url) not in logged
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in logged
    assert not [record for record in caplog.records if record.name.startswith("botocore")]
    # Warnings still get through.
    logging.getLogger("botocore.credentials").warning("visible")
    assert caplog.records[-1].getMessage() == "visible"


LAMBDA_PROBE = r"""
import json, logging, sys

class LambdaLoggerHandler(logging.Handler):
    # The name of awslambdaric's root handler: what the Python runtime installs.
    names = []
    def emit(self, record):
        self.names.append(record.name)

class OtherHandler(logging.Handler):
    names = []
    def emit(self, record):
        self.names.append(record.name)

runtime, other = LambdaLoggerHandler(), OtherHandler()
logging.getLogger().addHandler(runtime)
logging.getLogger().addHandler(other)
logging.getLogger().setLevel(logging.INFO)

from imagegw.logs import invocation, invocation_fields, lambda_logging

class Context:
    function_name = "imagegw-GatewayFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:imagegw"
    def __init__(self, request_id):
        self.aws_request_id = request_id

lambda_logging("INFO")
for request_id in ("first-invocation", "second-invocation"):
    token = invocation.set(invocation_fields(Context(request_id)))
    logging.getLogger("imagegw.generation").info("generated", extra={"n": 1})
    invocation.reset(token)
logging.getLogger("botocore").warning("not the gateway's")
logging.getLogger("imagegw.generation").debug("below the level")
print(json.dumps({"runtime": runtime.names, "other": other.names}), file=sys.stderr)
"""


def test_lambda_lines_carry_the_invocation_and_the_runtime_handler_does_not_repeat_them() -> None:
    package = Path(__file__).resolve().parents[2] / "functions" / "gateway"
    completed = subprocess.run(
        [sys.executable, "-c", LAMBDA_PROBE],
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(package),
            "_X_AMZN_TRACE_ID": "Root=1-5e66d96f-7491f09a79d18acf3d050000;Sampled=1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    first, second = (json.loads(line) for line in completed.stdout.splitlines())
    assert first["message"] == "generated"
    assert first["n"] == 1
    assert first["service"] == "imagegw"
    assert first["timestamp"].endswith("+00:00")
    assert first["cold_start"] is True
    assert second["cold_start"] is False
    assert (first["function_request_id"], second["function_request_id"]) == (
        "first-invocation",
        "second-invocation",
    )
    assert first["function_name"] == "imagegw-GatewayFunction"
    assert first["function_memory_size"] == 1024
    assert first["function_arn"].endswith(":function:imagegw")
    assert first["xray_trace_id"] == "1-5e66d96f-7491f09a79d18acf3d050000"
    handlers = json.loads(completed.stderr.strip().splitlines()[-1])
    # The runtime's handler leaves the gateway's lines alone (no plain-text repeat of each);
    # any other handler still sees them.
    assert handlers["runtime"] == ["botocore"]
    assert handlers["other"] == ["imagegw.generation", "imagegw.generation", "botocore"]
