"""The SAM CLI accepts template.yaml, and the SAM transform turns it into the intended stack.

The SAM CLI lives in .venv-sam (`make test` creates it from requirements-sam.txt): its pins
conflict with the gateway's. Everything here runs offline and without AWS credentials: the
subprocesses get a Region, no credentials, no config files, and no metadata service to ask.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SAM_BIN = REPO / ".venv-sam" / "bin"
TEMPLATE = REPO / "template.yaml"
TRANSLATE = Path(__file__).with_name("translate_template.py")
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:imagegw/{}-AbCdEf"


def offline_environment(home: Path) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "IMAGEGW_", "SAM_"))
    }
    environment.update(
        HOME=str(home),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(home / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
    )
    return environment


def run(command: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(command[0])
    assert executable.exists(), f"{executable} is missing: run `make test` (it creates .venv-sam)"
    return subprocess.run(
        command,
        cwd=REPO,
        env=offline_environment(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_sam_validate_with_lint_passes_offline(tmp_path: Path) -> None:
    completed = run([str(SAM_BIN / "sam"), "validate", "--lint", "-t", str(TEMPLATE)], tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "is a valid SAM Template" in completed.stdout


def test_sam_validate_translates_the_template_offline(tmp_path: Path) -> None:
    # Without --lint, sam validate runs the SAM translator over the template.
    completed = run([str(SAM_BIN / "sam"), "validate", "-t", str(TEMPLATE)], tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "is a valid SAM Template" in completed.stdout


@pytest.fixture(scope="module")
def translated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    completed = run(
        [
            str(SAM_BIN / "python"),
            str(TRANSLATE),
            str(TEMPLATE),
            f"ProviderSecretArn={SECRET.format('providers')}",
            f"ClientKeysSecretArn={SECRET.format('client-keys')}",
        ],
        tmp_path_factory.mktemp("home"),
    )
    assert completed.returncode == 0, completed.stderr
    document: dict[str, Any] = json.loads(completed.stdout)
    return document


def of_type(translated: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in translated["Resources"].items()
        if resource["Type"] == kind
    }


def test_no_role_or_managed_policy_is_added_by_sam(translated: dict[str, Any]) -> None:
    # SAM adds AWSLambdaBasicExecutionRole, AWSLambdaSQSQueueExecutionRole and
    # AWSXrayWriteOnlyAccess (all on "*") only to roles it generates itself.
    roles = of_type(translated, "AWS::IAM::Role")
    assert set(roles) == {"GatewayRole", "WorkerRole", "SignerRole"}
    assert all("ManagedPolicyArns" not in role for role in roles.values())
    functions = of_type(translated, "AWS::Lambda::Function")
    assert {name: function["Role"] for name, function in functions.items()} == {
        "GatewayFunction": {"Fn::GetAtt": ["GatewayRole", "Arn"]},
        "WorkerFunction": {"Fn::GetAtt": ["WorkerRole", "Arn"]},
    }


def test_functions_are_arm64_python_with_active_tracing(translated: dict[str, Any]) -> None:
    for function in of_type(translated, "AWS::Lambda::Function").values():
        assert function["Architectures"] == ["arm64"]
        assert function["Runtime"].startswith("python3.")
        assert int(function["Runtime"].split(".")[1]) >= 12
        assert function["TracingConfig"] == {"Mode": "Active"}
        assert len(function["Layers"]) == 1


def test_the_rest_api_has_exactly_one_stage_named_by_the_parameter(
    translated: dict[str, Any],
) -> None:
    stages = of_type(translated, "AWS::ApiGateway::Stage")
    assert len(stages) == 1
    (stage,) = stages.values()
    assert stage["StageName"] == {"Ref": "Stage"}
    api = of_type(translated, "AWS::ApiGateway::RestApi")["GatewayApi"]
    paths = api["Body"]["paths"]
    assert set(paths) == {"/", "/{proxy+}"}
    assert all(set(methods) == {"x-amazon-apigateway-any-method"} for methods in paths.values())


def test_the_function_url_is_public_and_invokable_only_through_the_url(
    translated: dict[str, Any],
) -> None:
    (url,) = of_type(translated, "AWS::Lambda::Url").values()
    assert url["AuthType"] == "NONE"
    assert url["TargetFunctionArn"] == {"Ref": "GatewayFunction"}
    permissions = of_type(translated, "AWS::Lambda::Permission").values()
    public = [permission for permission in permissions if permission["Principal"] == "*"]
    # Since October 2025 a public function URL needs both permissions; the second one is
    # limited to calls that come through the URL.
    assert sorted(permission["Action"] for permission in public) == [
        "lambda:InvokeFunction",
        "lambda:InvokeFunctionUrl",
    ]
    (invoke,) = [p for p in public if p["Action"] == "lambda:InvokeFunction"]
    assert invoke["InvokedViaFunctionUrl"] is True


def test_the_worker_is_driven_by_the_jobs_queue(translated: dict[str, Any]) -> None:
    (mapping,) = of_type(translated, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["FunctionName"] == {"Ref": "WorkerFunction"}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 1


def test_async_invokes_of_the_gateway_are_not_retried(translated: dict[str, Any]) -> None:
    (config,) = of_type(translated, "AWS::Lambda::EventInvokeConfig").values()
    assert config["FunctionName"] == {"Ref": "GatewayFunction"}
    assert config["MaximumRetryAttempts"] == 0
