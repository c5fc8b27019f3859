"""events/env.local.json: `sam local start-api --env-vars events/env.local.json` on no AWS.

The deployed functions read secrets, a bucket, tables and a queue. The file switches them to
the embedded defaults: local link storage, in-memory jobs and idempotency, the development key,
no Secrets Manager. `sam local` needs a container engine this machine lacks, so the SAM CLI's
own code computes the environment it would give each function (tests/deploy/sam_local_env.py),
and the real handler is run with exactly that environment.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lambda_harness import FakeLambdaContext, load_event, response_body

from imagegw import settings as settings_module

pytest_plugins = ["lambda_fixtures"]

REPO = Path(__file__).resolve().parents[2]
ENV_FILE = REPO / "events" / "env.local.json"
TEMPLATE = REPO / "template.yaml"
SAM_PYTHON = REPO / ".venv-sam" / "bin" / "python"
RESOLVE = REPO / "tests" / "deploy" / "sam_local_env.py"
FUNCTIONS = ("GatewayFunction", "WorkerFunction", "WebSocketFunction")
PNG = b"\x89PNG\r\n\x1a\n"


def sam_local_environment(function: str, home: Path) -> dict[str, Any]:
    assert SAM_PYTHON.exists(), f"{SAM_PYTHON} is missing: run `make test` (it creates .venv-sam)"
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "IMAGEGW_", "SAM_"))
    }
    environment.update(
        HOME=str(home),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
    )
    completed = subprocess.run(
        [str(SAM_PYTHON), str(RESOLVE), str(TEMPLATE), str(ENV_FILE), function],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def known_settings() -> set[str]:
    return {
        name.upper() for names in settings_module._environment_names().values() for name in names
    }


def test_the_env_file_names_only_settings_the_gateway_knows() -> None:
    values = json.loads(ENV_FILE.read_text(encoding="utf-8"))
    assert set(values) <= {"Parameters", *FUNCTIONS}
    known = known_settings()
    for section, variables in values.items():
        unknown = sorted(name for name in variables if name not in known)
        assert unknown == [], f"{section}: not gateway settings: {unknown}"
        assert all(isinstance(value, str) for value in variables.values()), section


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_override_reaches_the_function_under_sam_local(function: str, tmp_path: Path) -> None:
    # SAM local only sets variables the template declares: an override of anything else would
    # be dropped without a word.
    values = json.loads(ENV_FILE.read_text(encoding="utf-8"))
    overrides = {**values.get("Parameters", {}), **values.get(function, {})}
    report = sam_local_environment(function, tmp_path)
    assert set(overrides) <= set(report["declared"])
    for name, value in overrides.items():
        assert report["resolved"][name] == value, name
    resolved = report["resolved"]
    # Nothing left pointing at AWS resources that do not exist locally.
    for name in (
        "IMAGEGW_JOBS_TABLE",
        "IMAGEGW_JOBS_QUEUE_URL",
        "IMAGEGW_IDEMPOTENCY_TABLE",
        "IMAGEGW_REALTIME_TABLE",
        "IMAGEGW_WEBSOCKET_ENDPOINT",
        "IMAGEGW_WEBSOCKET_URL",
        "IMAGEGW_PROVIDER_SECRET_ID",
        "IMAGEGW_CLIENT_KEYS_SECRET_ID",
        "IMAGEGW_S3_SIGNER_ROLE_ARN",
    ):
        assert resolved.get(name, "") == "", name
    assert resolved["IMAGEGW_STORAGE"] == "local"


def test_the_gateway_with_that_environment_serves_images_with_no_aws(
    monkeypatch: pytest.MonkeyPatch,
    cold_handler: Callable[[Any, Any], Any],
    lambda_storage_dir: Path,
    tmp_path: Path,
) -> None:
    resolved = sam_local_environment("GatewayFunction", tmp_path)["resolved"]
    for name in list(os.environ):
        if name.startswith(("IMAGEGW_", "POWERTOOLS_", "AWS_LAMBDA_")):
            monkeypatch.delenv(name)
    for name, value in resolved.items():
        if name.startswith(("IMAGEGW_", "POWERTOOLS_", "AWS_LAMBDA_", "AWS_SAM_")):
            monkeypatch.setenv(name, value)
    # The one addition: the container's /tmp (the store's default) is this test's directory.
    monkeypatch.setenv("IMAGEGW_LOCAL_STORAGE_DIR", str(lambda_storage_dir))
    # Any AWS call would go nowhere: nothing may need one.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")

    models = cold_handler(load_event("rest-v1-models"), FakeLambdaContext())
    assert models["statusCode"] == 200
    assert "local/sketch" in {m["id"] for m in json.loads(response_body(models))["data"]}

    inline = cold_handler(load_event("rest-v1-generate"), FakeLambdaContext())
    assert inline["statusCode"] == 200, response_body(inline)[:300]
    (image,) = json.loads(response_body(inline))["data"]
    assert base64.b64decode(image["b64_json"]).startswith(PNG)

    event = load_event("rest-v1-generate")
    body = json.loads(event["body"])
    body["response_format"] = "url"
    event["body"] = json.dumps(body)
    linked = cold_handler(event, FakeLambdaContext("another-request"))
    assert linked["statusCode"] == 200, response_body(linked)[:300]
    (item,) = json.loads(response_body(linked))["data"]
    assert "/v1/images/files/" in item["url"]
    assert len(list(lambda_storage_dir.glob("*.png"))) == 1
