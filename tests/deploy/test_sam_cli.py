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
GUIDED = Path(__file__).with_name("guided_prompts.py")
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
    assert set(roles) == {
        "GatewayRole",
        "WorkerRole",
        "WebSocketRole",
        "SignerRole",
        "ApiGatewayCloudWatchRole",
    }
    # API Gateway's account-wide logging role uses the one AWS policy made for it.
    assert roles.pop("ApiGatewayCloudWatchRole")["ManagedPolicyArns"] == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs"
        }
    ]
    assert all("ManagedPolicyArns" not in role for role in roles.values())
    functions = of_type(translated, "AWS::Lambda::Function")
    assert {name: function["Role"] for name, function in functions.items()} == {
        "GatewayFunction": {"Fn::GetAtt": ["GatewayRole", "Arn"]},
        "WorkerFunction": {"Fn::GetAtt": ["WorkerRole", "Arn"]},
        "WebSocketFunction": {"Fn::GetAtt": ["WebSocketRole", "Arn"]},
    }


def test_functions_are_arm64_python_traced_only_when_the_parameter_says(
    translated: dict[str, Any],
) -> None:
    for function in of_type(translated, "AWS::Lambda::Function").values():
        assert function["Architectures"] == ["arm64"]
        assert function["Runtime"].startswith("python3.")
        assert int(function["Runtime"].split(".")[1]) >= 12
        assert function["TracingConfig"] == {
            "Mode": {"Fn::If": ["TracingEnabled", "Active", "PassThrough"]}
        }
        assert len(function["Layers"]) == 1


def test_functions_have_reserved_concurrency(translated: dict[str, Any]) -> None:
    functions = of_type(translated, "AWS::Lambda::Function")
    for name in ("Gateway", "Worker"):
        assert functions[f"{name}Function"]["ReservedConcurrentExecutions"] == {
            "Fn::If": [
                f"{name}HasReservedConcurrency",
                {"Ref": f"{name}ReservedConcurrency"},
                {"Ref": "AWS::NoValue"},
            ]
        }


def test_the_stage_is_throttled_and_access_logged(translated: dict[str, Any]) -> None:
    (stage,) = of_type(translated, "AWS::ApiGateway::Stage").values()
    (settings,) = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert settings["DataTraceEnabled"] is False
    assert stage["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]
    }
    # The stage is created after API Gateway's account role (through the RestApi it belongs to).
    assert translated["Resources"]["GatewayApi"]["DependsOn"] == "ApiGatewayAccountReady"


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


def test_the_function_url_is_iam_by_default_and_public_only_by_choice(
    translated: dict[str, Any],
) -> None:
    (url,) = of_type(translated, "AWS::Lambda::Url").values()
    assert url["AuthType"] == {"Ref": "FunctionUrlAuthType"}
    assert url["TargetFunctionArn"] == {"Ref": "GatewayFunction"}
    public = {
        name: resource
        for name, resource in translated["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Permission"
        and resource["Properties"]["Principal"] == "*"
    }
    # Since October 2025 a public function URL needs both permissions; the second one is
    # limited to calls that come through the URL. Both exist only when AuthType is NONE.
    assert sorted(p["Properties"]["Action"] for p in public.values()) == [
        "lambda:InvokeFunction",
        "lambda:InvokeFunctionUrl",
    ]
    assert {p["Condition"] for p in public.values()} == {"FunctionUrlIsPublic"}
    (invoke,) = [p for p in public.values() if p["Properties"]["Action"] == "lambda:InvokeFunction"]
    assert invoke["Properties"]["InvokedViaFunctionUrl"] is True


def guided_questions(home: Path, *overrides: str) -> list[str]:
    completed = run(
        [str(SAM_BIN / "python"), str(GUIDED), str(TEMPLATE), *overrides],
        home,
    )
    assert completed.returncode == 0, completed.stderr
    questions: list[str] = json.loads(completed.stdout)
    return questions


def test_guided_deploy_asks_about_the_two_rest_routes_only(tmp_path: Path) -> None:
    # The SAM CLI's own check. The REST routes have no API Gateway authorizer (the gateway
    # checks bearer keys itself): docs/deploy.md says to answer y to both. The Function URL
    # is AWS_IAM by default, so it is not asked about.
    assert guided_questions(tmp_path) == [
        "GatewayFunction has no authentication. Is this okay?",
        "GatewayFunction has no authentication. Is this okay?",
    ]


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
