"""template.yaml and samconfig.toml: what the stack promises, read from the parsed files.

``sam build`` only finds out at build time that a handler path or a layer folder is wrong, and
nothing at all finds out that a policy grew a wildcard or a bucket lost its public-access block:
each property of the deployed stack is an assertion here that fails if the property is removed.
The template is parsed with cfn-lint's CloudFormation-aware loader (``!Ref``, ``!Sub``, ``!GetAtt``
become their ``{"Ref": ...}`` / ``{"Fn::...": ...}`` forms). tests/deploy runs the SAM CLI and the
SAM translator on the same file.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
SAMCONFIG = REPO / "samconfig.toml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"

GATEWAY_HANDLER = "imagegw.entrypoints.handler.handler"
WORKER_HANDLER = "imagegw.entrypoints.worker.handler"
# Handlers whose module another branch adds (events: imagegw/entrypoints/worker.py).
# Until it lands the template may name it; once it exists the module is checked like any other.

IMAGE_OBJECTS = {
    "Fn::Sub": [
        "${Arn}/${Prefix}*",
        {
            "Arn": {"Fn::GetAtt": ["ImagesBucket", "Arn"]},
            "Prefix": {"Fn::FindInMap": ["Images", "Storage", "Prefix"]},
        },
    ]
}

UPLOAD_OBJECTS = {
    "Fn::Sub": [
        "${Arn}/${Prefix}*",
        {
            "Arn": {"Fn::GetAtt": ["ImagesBucket", "Arn"]},
            "Prefix": {"Fn::FindInMap": ["Images", "Storage", "UploadsPrefix"]},
        },
    ]
}
# Edits read their inputs (earlier images, uploads); edit jobs keep theirs as uploads.
EDIT_INPUT_GRANTS = ("ReadEditInputs", "KeepEditJobInputs")
IDEMPOTENT_ANSWERS = {
    "Fn::Sub": [
        "${Arn}/${Prefix}*",
        {
            "Arn": {"Fn::GetAtt": ["ImagesBucket", "Arn"]},
            "Prefix": {"Fn::FindInMap": ["Images", "Storage", "IdempotencyPrefix"]},
        },
    ]
}
ITEM_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
}
SQS_POLLER_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:DeleteMessageBatch",
    "sqs:ChangeMessageVisibility",
    "sqs:ChangeMessageVisibilityBatch",
    "sqs:GetQueueAttributes",
}


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    document, problems = decode_str(TEMPLATE.read_text(encoding="utf-8"))
    assert problems == [], problems
    assert isinstance(document, dict)
    return document


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource.get("Type") == kind
    }


def resource(template: dict[str, Any], name: str, kind: str) -> dict[str, Any]:
    assert name in template["Resources"], f"template.yaml has no resource {name}"
    found: dict[str, Any] = template["Resources"][name]
    assert found["Type"] == kind
    return found


def function_property(template: dict[str, Any], function: dict[str, Any], name: str) -> Any:
    """A function property, falling back to Globals.Function as SAM does."""
    properties = function.get("Properties", {})
    if name in properties:
        return properties[name]
    return template.get("Globals", {}).get("Function", {}).get(name)


def function_environment(template: dict[str, Any], function: dict[str, Any]) -> dict[str, Any]:
    """The variables the function gets: Globals merged with its own, as SAM merges maps."""
    merged: dict[str, Any] = {}
    for source in (template.get("Globals", {}).get("Function", {}), function["Properties"]):
        merged.update(source.get("Environment", {}).get("Variables", {}))
    return merged


def function_by_handler(template: dict[str, Any], handler: str) -> tuple[str, dict[str, Any]]:
    found = [
        (name, function)
        for name, function in resources_of_type(template, "AWS::Serverless::Function").items()
        if function["Properties"].get("Handler") == handler
    ]
    assert len(found) == 1, f"exactly one function must use {handler}"
    return found[0]


@pytest.fixture(scope="module")
def gateway_function(template: dict[str, Any]) -> dict[str, Any]:
    return function_by_handler(template, GATEWAY_HANDLER)[1]


@pytest.fixture(scope="module")
def worker_function(template: dict[str, Any]) -> dict[str, Any]:
    return function_by_handler(template, WORKER_HANDLER)[1]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_of(template: dict[str, Any], function: dict[str, Any]) -> dict[str, Any]:
    role = function["Properties"].get("Role")
    assert isinstance(role, dict), "the function must use a role of this template"
    assert "Fn::GetAtt" in role, role
    name, attribute = role["Fn::GetAtt"]
    assert attribute == "Arn"
    return resource(template, name, "AWS::IAM::Role")


def unconditional(items: list[Any]) -> list[Any]:
    """List items with ``Fn::If`` items expanded to both branches (``AWS::NoValue`` dropped)."""
    expanded: list[Any] = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            _, when_true, when_false = item["Fn::If"]
            expanded += [
                branch for branch in (when_true, when_false) if branch != {"Ref": "AWS::NoValue"}
            ]
        else:
            expanded.append(item)
    return expanded


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role["Properties"].get("Policies", [])
        for statement in unconditional(policy["PolicyDocument"]["Statement"])
    ]


def grants(role: dict[str, Any], action: str) -> list[Any]:
    """Every resource the role's Allow statements grant ``action`` on."""
    return [
        granted
        for statement in statements(role)
        if statement["Effect"] == "Allow" and action in as_list(statement["Action"])
        for granted in as_list(statement["Resource"])
    ]


def image_prefix(template: dict[str, Any]) -> str:
    prefix = template["Mappings"]["Images"]["Storage"]["Prefix"]
    assert isinstance(prefix, str)
    return prefix


def python_minor(runtime: str) -> int:
    match = re.fullmatch(r"python3\.(\d+)", runtime)
    assert match, f"not a Python runtime: {runtime}"
    return int(match.group(1))


# ---------------------------------------------------------------------------- lint and shape


def test_cfn_lint_passes_without_findings_even_informational_ones() -> None:
    assert CFN_LINT.exists(), f"cfn-lint is not installed next to {sys.executable}"
    completed = subprocess.run(
        # -c I: informational findings too (I3011 & co.); any left must be fixed or ignored in
        # the template's cfn-lint metadata with a reason.
        [str(CFN_LINT), "-c", "I", "--", str(TEMPLATE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout == ""
    assert completed.stderr == ""


def test_template_is_a_sam_template(template: dict[str, Any]) -> None:
    transform = template["Transform"]
    transforms = transform if isinstance(transform, list) else [transform]
    assert "AWS::Serverless-2016-10-31" in transforms


# ---------------------------------------------------------------------------- functions and code


@pytest.mark.parametrize("handler", [GATEWAY_HANDLER, WORKER_HANDLER])
def test_function_handler_points_at_the_package(template: dict[str, Any], handler: str) -> None:
    _, function = function_by_handler(template, handler)
    code_uri = function_property(template, function, "CodeUri")
    assert code_uri == "functions/gateway"
    module_name, function_name = handler.rsplit(".", 1)
    module_path = REPO / code_uri / Path(*module_name.split(".")).with_suffix(".py")
    assert (REPO / code_uri / "imagegw" / "__init__.py").is_file()
    assert module_path.is_file(), f"{module_path} does not exist"
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    top_level = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)} | {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert function_name in top_level


def test_every_function_runs_python_3_12_or_newer_on_arm64(template: dict[str, Any]) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    assert set(functions) == {
        "GatewayFunction",
        "WorkerFunction",
        "WebSocketFunction",
        "StreamingFunction",
    }
    for function in functions.values():
        runtime = function_property(template, function, "Runtime")
        assert isinstance(runtime, str)
        assert python_minor(runtime) >= 12
        assert function_property(template, function, "Architectures") == ["arm64"]


TRACING = {"Fn::If": ["TracingEnabled", "Active", "PassThrough"]}


def test_tracing_is_a_parameter_and_off_by_default(
    template: dict[str, Any], gateway_role: dict[str, Any], worker_role: dict[str, Any]
) -> None:
    parameter = template["Parameters"]["EnableTracing"]
    assert parameter["Default"] == "false"
    assert set(parameter["AllowedValues"]) == {"true", "false"}
    assert template["Conditions"]["TracingEnabled"] == {
        "Fn::Equals": [{"Ref": "EnableTracing"}, "true"]
    }
    for function in resources_of_type(template, "AWS::Serverless::Function").values():
        # PassThrough is Lambda's default: no tracing unless a caller sends a trace header.
        assert function_property(template, function, "Tracing") == TRACING
        environment = function_environment(template, function)
        assert environment["IMAGEGW_TRACING"] == {"Fn::If": ["TracingEnabled", "true", "false"]}
    api = resource(template, "GatewayApi", "AWS::Serverless::Api")["Properties"]
    assert api["TracingEnabled"] == {"Fn::If": ["TracingEnabled", True, False]}
    # The X-Ray grant exists only when tracing is on.
    for role in (gateway_role, worker_role):
        (xray,) = [
            statement
            for statement in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            if "Fn::If" in statement
        ]
        condition, granted, otherwise = xray["Fn::If"]
        assert condition == "TracingEnabled"
        assert granted["Sid"] == "XRay"
        assert otherwise == {"Ref": "AWS::NoValue"}


def test_dependencies_layer_is_built_from_pinned_requirements(template: dict[str, Any]) -> None:
    layers = {
        name: layer
        for name, layer in resources_of_type(template, "AWS::Serverless::LayerVersion").items()
        if layer["Properties"].get("ContentUri") == "layers/deps"
    }
    assert len(layers) == 1
    (layer_name, layer) = next(iter(layers.items()))
    requirements = REPO / "layers" / "deps" / "requirements.txt"
    lines = [
        line.split("#")[0].strip()
        for line in requirements.read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    ]
    names = {re.split(r"[=<>!~\[; ]", line)[0].lower() for line in lines}
    assert {"fastapi", "mangum"} <= names
    unpinned = [line for line in lines if "==" not in line]
    assert unpinned == []

    # Every function uses the layer, and the layer is built for the function's runtime and CPU.
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    for function in resources_of_type(template, "AWS::Serverless::Function").values():
        # SAM adds a function's own layers to the Globals' ones (the streaming function's adapter).
        layers = [
            *template["Globals"]["Function"]["Layers"],
            *function["Properties"].get("Layers", []),
        ]
        assert {"Ref": layer_name} in layers
        runtime = function_property(template, function, "Runtime")
        assert runtime in layer["Properties"]["CompatibleRuntimes"]
    # Built by layers/deps/Makefile: python3.12 wheels for aarch64 unless told otherwise.
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    makefile = (REPO / "layers" / "deps" / "Makefile").read_text(encoding="utf-8")
    assert "LAYER_ARCH ?= arm64" in makefile
    assert "--python-version 3.12" in makefile


@pytest.mark.parametrize(
    ("makefile", "targets"),
    [
        (
            "functions/gateway/Makefile",
            [
                "build-GatewayFunction",
                "build-WorkerFunction",
                "build-WebSocketFunction",
                "build-StreamingFunction",
            ],
        ),
        ("layers/deps/Makefile", ["build-DependenciesLayer"]),
    ],
)
def test_sam_build_compiles_bytecode_that_survives_the_zips_dates(
    template: dict[str, Any], makefile: str, targets: list[str]
) -> None:
    # Lambda's code directories are read-only: without .pyc in the artifact every cold start
    # compiles from source. SAM's ZIP dates every file 1980-01-01, so only unchecked-hash
    # bytecode (no date inside) stays valid; `make package-check` proves it on the build.
    text = (REPO / makefile).read_text(encoding="utf-8")
    assert "compileall" in text
    assert "--invalidation-mode unchecked-hash" in text
    for target in targets:
        assert target in text
        logical_id = target.removeprefix("build-")
        assert template["Resources"][logical_id]["Metadata"]["BuildMethod"] == "makefile"


def test_api_events_cover_the_proxy_path_and_the_root(
    template: dict[str, Any], gateway_function: dict[str, Any]
) -> None:
    routes: dict[str, set[str]] = {}
    for event in gateway_function["Properties"]["Events"].values():
        if event["Type"] == "Api":
            properties = event["Properties"]
            assert properties["RestApiId"] == {"Ref": "GatewayApi"}
            routes.setdefault(properties["Path"], set()).add(properties["Method"].upper())
    assert routes == {"/{proxy+}": {"ANY"}, "/": {"ANY"}}


def test_rest_api_is_regional_and_staged_by_parameter(template: dict[str, Any]) -> None:
    api = resource(template, "GatewayApi", "AWS::Serverless::Api")["Properties"]
    assert api["StageName"] == {"Ref": "Stage"}
    # Only Regional REST APIs can have the 29 s integration timeout raised.
    assert api["EndpointConfiguration"]["Type"] == "REGIONAL"
    # Without it SAM adds a second, stray stage named "Stage".
    assert "OpenApiVersion" in api


def test_rest_stage_is_throttled_by_parameters_and_logs_nothing_sensitive(
    template: dict[str, Any],
) -> None:
    api = resource(template, "GatewayApi", "AWS::Serverless::Api")["Properties"]
    (settings,) = api["MethodSettings"]
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    # Execution logs and data traces would log whole requests, Authorization included.
    assert settings["LoggingLevel"] == "OFF"
    assert settings["DataTraceEnabled"] is False
    parameters = template["Parameters"]
    assert parameters["ApiThrottlingRateLimit"]["Default"] == 20
    assert parameters["ApiThrottlingBurstLimit"]["Default"] == 40
    assert (
        parameters["ApiThrottlingBurstLimit"]["Default"]
        >= (parameters["ApiThrottlingRateLimit"]["Default"])
    )


# API Gateway's own answers: status, OpenAI error type and code, and whether a client may send
# the request again on its own (only when the function never ran).
GATEWAY_ANSWERS = {
    "THROTTLED": (429, "rate_limit_error", "rate_limit_exceeded", "true"),
    "REQUEST_TOO_LARGE": (413, "invalid_request_error", "payload_too_large", "false"),
    "INTEGRATION_TIMEOUT": (504, "timeout_error", "gateway_timeout", "false"),
    "INTEGRATION_FAILURE": (502, "server_error", "gateway_integration_failure", "false"),
    "DEFAULT_4XX": (None, "invalid_request_error", "gateway_rejected", "false"),
    "DEFAULT_5XX": (None, "server_error", "gateway_error", "false"),
}


def test_api_gateways_own_answers_are_openai_errors_with_the_retry_advice(
    template: dict[str, Any],
) -> None:
    api = resource(template, "GatewayApi", "AWS::Serverless::Api")["Properties"]
    answers = api["GatewayResponses"]
    assert set(answers) == set(GATEWAY_ANSWERS)
    for name, (status, error_type, code, retry) in GATEWAY_ANSWERS.items():
        answer = answers[name]
        assert answer.get("StatusCode") == status, name
        assert answer["ResponseParameters"]["Headers"] == {"x-should-retry": f"'{retry}'"}, name
        (content_type,) = answer["ResponseTemplates"]
        assert content_type == "application/json"
        # API Gateway's message variable is a JSON string already (quotes included).
        body = answer["ResponseTemplates"][content_type].replace(
            "$context.error.messageString", json.dumps("Too Many Requests")
        )
        assert "$" not in body, name
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "param", "code"}, name
        assert (error["type"], error["param"], error["code"]) == (error_type, None, code), name
        assert error["message"], name


def test_rest_stage_writes_json_access_logs_without_query_strings_or_headers(
    template: dict[str, Any],
) -> None:
    api = resource(template, "GatewayApi", "AWS::Serverless::Api")
    setting = api["Properties"]["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    log_format = setting["Format"]
    assert "\n" not in log_format  # one line per request
    # Every $context variable replaced by a number: the format must be a JSON object.
    sample = json.loads(re.sub(r"\$context\.[A-Za-z.]+", "1", log_format))
    assert {"requestId", "ip", "httpMethod", "path", "status", "integrationLatency"} <= set(sample)
    lowered = log_format.lower()
    for forbidden in ("querystring", "header", "authoriz", "requestoverride", "identity.apikey"):
        assert forbidden not in lowered, forbidden
    # $context.path is the path alone; $context.requestOverride / method.request.* are not used.
    assert "$context.path" in log_format
    group = resource(template, "ApiAccessLogGroup", "AWS::Logs::LogGroup")
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_access_logs_wait_for_api_gateways_account_role(template: dict[str, Any]) -> None:
    # REST access logs fail to deploy until API Gateway's account settings name a CloudWatch
    # role: created (and kept) by the stack unless the operator says the account has one.
    parameter = template["Parameters"]["ApiGatewayLoggingRole"]
    assert parameter["Default"] == "create"
    assert set(parameter["AllowedValues"]) == {"create", "existing"}
    account = resource(template, "ApiGatewayAccount", "AWS::ApiGateway::Account")
    role = resource(template, "ApiGatewayCloudWatchRole", "AWS::IAM::Role")
    for kept in (account, role):
        assert kept["Condition"] == "CreateApiGatewayLoggingRole"
        assert (kept["DeletionPolicy"], kept["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert account["Properties"]["CloudWatchRoleArn"] == {
        "Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]
    }
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "apigateway.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    ready = resource(template, "ApiGatewayAccountReady", "AWS::CloudFormation::WaitConditionHandle")
    assert ready["Metadata"]["AccountSettings"] == {
        "Fn::If": ["CreateApiGatewayLoggingRole", {"Ref": "ApiGatewayAccount"}, "existing"]
    }
    api = resource(template, "GatewayApi", "AWS::Serverless::Api")
    assert api["DependsOn"] == "ApiGatewayAccountReady"


def test_gateway_function_url_is_iam_only_unless_the_operator_opens_it(
    template: dict[str, Any], gateway_function: dict[str, Any]
) -> None:
    parameter = template["Parameters"]["FunctionUrlAuthType"]
    assert parameter["Default"] == "AWS_IAM"
    assert set(parameter["AllowedValues"]) == {"AWS_IAM", "NONE"}
    assert "FunctionUrlConfig" not in gateway_function["Properties"]
    url = resource(template, "GatewayFunctionUrl", "AWS::Lambda::Url")["Properties"]
    assert url["TargetFunctionArn"] == {"Ref": "GatewayFunction"}
    assert url["AuthType"] == {"Ref": "FunctionUrlAuthType"}
    assert url.get("InvokeMode", "BUFFERED") == "BUFFERED"
    # Public permissions exist only when the operator chose NONE, and the invoke one only for
    # calls through the URL.
    assert template["Conditions"]["FunctionUrlIsPublic"] == {
        "Fn::Equals": [{"Ref": "FunctionUrlAuthType"}, "NONE"]
    }
    public = {
        name: permission
        for name, permission in resources_of_type(template, "AWS::Lambda::Permission").items()
        if permission["Properties"]["Principal"] == "*"
        and permission["Properties"]["FunctionName"] == {"Ref": "GatewayFunction"}
    }
    assert len(public) == 2
    for permission in public.values():
        assert permission["Condition"] == "FunctionUrlIsPublic"
        assert permission["Properties"]["FunctionName"] == {"Ref": "GatewayFunction"}
    actions = {p["Properties"]["Action"]: p["Properties"] for p in public.values()}
    assert actions["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"] == "NONE"
    assert actions["lambda:InvokeFunction"]["InvokedViaFunctionUrl"] is True
    timeout = function_property(template, gateway_function, "Timeout")
    # Longer than API Gateway's 29 s (that is what the URL is for), within Lambda's 900 s.
    assert 29 < timeout <= 900


@pytest.mark.parametrize(("function", "default"), [("Gateway", 50), ("Worker", 10)])
def test_reserved_concurrency_caps_each_function_by_parameter(
    template: dict[str, Any], function: str, default: int
) -> None:
    name = f"{function}ReservedConcurrency"
    parameter = template["Parameters"][name]
    assert parameter["Type"] == "Number"
    assert parameter["Default"] == default
    assert parameter["MinValue"] == -1  # -1: no reservation (small new-account quotas)
    condition = f"{function}HasReservedConcurrency"
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": name}, -1]}]}
    properties = resource(template, f"{function}Function", "AWS::Serverless::Function")[
        "Properties"
    ]
    assert properties["ReservedConcurrentExecutions"] == {
        "Fn::If": [condition, {"Ref": name}, {"Ref": "AWS::NoValue"}]
    }


def test_worker_reservation_leaves_room_for_the_queue_pollers(template: dict[str, Any]) -> None:
    # Below the SQS scaling cap, the poller's invocations are throttled and jobs are retried.
    parameters = template["Parameters"]
    assert (
        parameters["WorkerReservedConcurrency"]["Default"]
        >= parameters["WorkerMaxConcurrency"]["Default"]
    )


def test_gateway_async_invokes_are_not_retried_blindly(gateway_function: dict[str, Any]) -> None:
    config = gateway_function["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 0
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]},
    }


def test_eventbridge_rule_targets_the_gateway_when_enabled(template: dict[str, Any]) -> None:
    assert template["Conditions"]["EventBridgeEnabled"] == {
        "Fn::Equals": [{"Ref": "EnableEventBridgeRule"}, "true"]
    }
    rule = resource(template, "GatewayEventRule", "AWS::Events::Rule")
    assert rule["Condition"] == "EventBridgeEnabled"
    assert rule["Properties"]["EventPattern"]["source"] == [{"Ref": "EventBridgeSource"}]
    # Events that name no client key never invoke the function (the gateway refuses them too).
    assert rule["Properties"]["EventPattern"]["detail"] == {"client": [{"exists": True}]}
    # The bus is a parameter: a bus of one's own narrows who can send (docs/deploy.md).
    assert rule["Properties"]["EventBusName"] == {"Ref": "EventBusName"}
    assert template["Parameters"]["EventBusName"]["Default"] == "default"
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["GatewayFunction", "Arn"]}
    permission = resource(template, "GatewayEventRulePermission", "AWS::Lambda::Permission")
    assert permission["Condition"] == "EventBridgeEnabled"
    assert permission["Properties"]["Principal"] == "events.amazonaws.com"
    assert permission["Properties"]["SourceArn"] == {"Fn::GetAtt": ["GatewayEventRule", "Arn"]}


def test_worker_consumes_the_jobs_queue_with_partial_batch_failures(
    worker_function: dict[str, Any],
) -> None:
    (event,) = worker_function["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    properties = event["Properties"]
    assert properties["Queue"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Each message is a paid generation that can take minutes: small batches only.
    assert 1 <= properties["BatchSize"] <= 2
    assert properties["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerMaxConcurrency"}


# ---------------------------------------------------------------------------- environment contract


def expected_environment(function: str) -> dict[str, Any]:
    shared = {
        "IMAGEGW_STORAGE": "s3",
        "IMAGEGW_S3_BUCKET": {"Ref": "ImagesBucket"},
        "IMAGEGW_S3_PREFIX": {"Fn::FindInMap": ["Images", "Storage", "Prefix"]},
        "IMAGEGW_URL_TTL_SECONDS": {"Ref": "UrlTtlSeconds"},
        "IMAGEGW_PROVIDER_SECRET_ID": {"Ref": "ProviderSecretArn"},
        "IMAGEGW_LOG_LEVEL": {"Ref": "LogLevel"},
        "IMAGEGW_CORS_ORIGINS": {"Ref": "CorsAllowedOrigins"},
        "IMAGEGW_JOBS_TABLE": {"Ref": "JobsTable"},
        "IMAGEGW_JOBS_QUEUE_URL": {"Ref": "JobsQueue"},
        "IMAGEGW_IDEMPOTENCY_TABLE": {"Ref": "IdempotencyTable"},
        "IMAGEGW_REALTIME_TABLE": {"Ref": "RealtimeTable"},
        "IMAGEGW_IMAGE_RETENTION_DAYS": {"Ref": "ImageRetentionDays"},
        "IMAGEGW_PUBLIC_BASE_URL": {"Ref": "PublicBaseUrl"},
        "IMAGEGW_METRICS_NAMESPACE": {"Fn::Sub": "imagegw/${AWS::StackName}"},
        "POWERTOOLS_SERVICE_NAME": "imagegw",
        "POWERTOOLS_METRICS_NAMESPACE": {"Fn::Sub": "imagegw/${AWS::StackName}"},
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    }
    signer = {"Fn::GetAtt": ["SignerRole", "Arn"]}
    websocket = "${ProgressWebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}"
    if function == "gateway":
        shared["IMAGEGW_CLIENT_KEYS_SECRET_ID"] = {"Ref": "ClientKeysSecretArn"}
        # Declared only so `sam local --env-vars` can set it; empty (= unset) when deployed:
        # a plain key never sits in the template.
        shared["IMAGEGW_API_KEYS"] = ""
        shared["IMAGEGW_S3_SIGNER_ROLE_ARN"] = signer
        shared["IMAGEGW_WEBSOCKET_URL"] = {"Fn::Sub": f"wss://{websocket}"}
    if function == "worker":
        # Pushed progress carries links signed like a job read's.
        shared["IMAGEGW_S3_SIGNER_ROLE_ARN"] = signer
        shared["IMAGEGW_WEBSOCKET_ENDPOINT"] = {"Fn::Sub": f"https://{websocket}"}
    return shared


@pytest.mark.parametrize(
    ("function", "handler"), [("gateway", GATEWAY_HANDLER), ("worker", WORKER_HANDLER)]
)
def test_functions_get_the_environment_the_code_reads(
    template: dict[str, Any], function: str, handler: str
) -> None:
    _, resource_ = function_by_handler(template, handler)
    environment = function_environment(template, resource_)
    for name, value in expected_environment(function).items():
        assert environment.get(name) == value, name
    assert image_prefix(template) == "images/"
    # The worker authenticates no client; only the worker pushes progress.
    if function == "worker":
        assert "IMAGEGW_CLIENT_KEYS_SECRET_ID" not in environment
    else:
        assert "IMAGEGW_WEBSOCKET_ENDPOINT" not in environment


def test_worker_knows_the_queues_max_receive_count(
    template: dict[str, Any], worker_function: dict[str, Any]
) -> None:
    # On the last delivery the worker records the job as failed before SQS moves the message
    # to the dead-letter queue; it can only do so if it knows which delivery is the last.
    queue = resource(template, "JobsQueue", "AWS::SQS::Queue")["Properties"]
    environment = function_environment(template, worker_function)
    max_receive_count = queue["RedrivePolicy"]["maxReceiveCount"]
    assert int(environment["IMAGEGW_JOBS_MAX_RECEIVE_COUNT"]) == max_receive_count


def test_upstream_timeout_leaves_room_inside_each_function_timeout(
    template: dict[str, Any],
) -> None:
    for function in resources_of_type(template, "AWS::Serverless::Function").values():
        upstream = float(
            function_environment(template, function)["IMAGEGW_UPSTREAM_TIMEOUT_SECONDS"]
        )
        assert 0 < upstream < function_property(template, function, "Timeout")


# ---------------------------------------------------------------------------- parameters


def test_parameters_and_their_defaults(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["Stage"]["Default"] == "dev"
    # Secrets are named by ARN and have no default: a deploy must say which ones.
    for name in ("ProviderSecretArn", "ClientKeysSecretArn"):
        assert "Default" not in parameters[name]
        assert parameters[name]["AllowedPattern"].startswith("^arn:aws")
    assert parameters["UrlTtlSeconds"]["Default"] == 3600
    # The signer role is assumed by a Lambda role (role chaining): its sessions last one hour
    # at most, and a URL cannot outlive the credentials that signed it.
    assert parameters["UrlTtlSeconds"]["MaxValue"] <= 3600
    assert parameters["ImageRetentionDays"]["Default"] == 1
    assert parameters["ImageRetentionDays"]["MinValue"] >= 1
    assert parameters["LogLevel"]["Default"] == "INFO"
    assert set(parameters["LogLevel"]["AllowedValues"]) == {"DEBUG", "INFO", "WARNING", "ERROR"}
    assert parameters["CorsAllowedOrigins"]["Default"] == ""
    assert parameters["AlarmTopicArn"]["Default"] == ""
    assert parameters["PublicBaseUrl"]["Default"] == ""


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("https://images.example.com", True),
        ("https://images.example.com/gw", True),
        ("https://images.example.com/gw/", False),  # Location would get a double slash
        ("http://images.example.com", False),
        ("images.example.com", False),
    ],
)
def test_public_base_url_parameter_takes_an_https_base_without_trailing_slash(
    template: dict[str, Any], value: str, accepted: bool
) -> None:
    pattern = template["Parameters"]["PublicBaseUrl"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted


def test_signer_role_only_reads_images_and_only_the_functions_that_link_assume_it(
    template: dict[str, Any],
) -> None:
    signer = resource(template, "SignerRole", "AWS::IAM::Role")
    assert signer["Properties"]["MaxSessionDuration"] == 3600
    # The gateway signs job reads and url answers; the worker and the WebSocket function push
    # job progress with links.
    roles = ["GatewayRole", "WorkerRole", "WebSocketRole"]
    assert signer["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"AWS": [{"Fn::GetAtt": [role, "Arn"]} for role in roles]},
            "Action": "sts:AssumeRole",
        }
    ]
    read, sign_uploads = statements(signer)
    assert (read["Effect"], read["Action"], read["Resource"]) == (
        "Allow",
        "s3:GetObject",
        IMAGE_OBJECTS,
    )
    # Upload forms (presigned POST) are signed by it too: S3 checks them against this grant.
    assert (sign_uploads["Effect"], sign_uploads["Action"], sign_uploads["Resource"]) == (
        "Allow",
        "s3:PutObject",
        UPLOAD_OBJECTS,
    )
    policy = resource(template, "GatewaySignerPolicy", "AWS::IAM::Policy")["Properties"]
    assert policy["Roles"] == [{"Ref": role} for role in roles]
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Sid": "AssumeSigner",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": {"Fn::GetAtt": ["SignerRole", "Arn"]},
        }
    ]
    # The gateway is not created (and so not invoked) before it may assume the signer.
    gateway = resource(template, "GatewayFunction", "AWS::Serverless::Function")
    assert gateway["DependsOn"] == "GatewaySignerPolicy"


# ---------------------------------------------------------------------------- bucket


@pytest.fixture(scope="module")
def bucket(template: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = resource(template, "ImagesBucket", "AWS::S3::Bucket")["Properties"]
    return properties


def test_bucket_blocks_every_kind_of_public_access(bucket: dict[str, Any]) -> None:
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_bucket_encrypts_by_default(bucket: dict[str, Any]) -> None:
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}


def test_bucket_expires_images_after_the_retention_parameter(
    template: dict[str, Any], bucket: dict[str, Any]
) -> None:
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    expire = rules["expire-images"]
    assert expire["Status"] == "Enabled"
    assert expire["Prefix"] == {"Fn::FindInMap": ["Images", "Storage", "Prefix"]}
    assert expire["ExpirationInDays"] == {"Ref": "ImageRetentionDays"}
    abort = rules["abort-incomplete-uploads"]
    assert abort["Status"] == "Enabled"
    assert abort["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1


def test_bucket_policy_refuses_requests_without_tls(template: dict[str, Any]) -> None:
    policy = resource(template, "ImagesBucketPolicy", "AWS::S3::BucketPolicy")["Properties"]
    assert policy["Bucket"] == {"Ref": "ImagesBucket"}
    (statement,) = [
        statement
        for statement in policy["PolicyDocument"]["Statement"]
        if statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert set(map(str, statement["Resource"])) == {
        str({"Fn::GetAtt": ["ImagesBucket", "Arn"]}),
        str({"Fn::Sub": "${ImagesBucket.Arn}/*"}),
    }


# ---------------------------------------------------------------------------- queues and tables


def test_jobs_queue_visibility_is_at_least_six_worker_timeouts(
    template: dict[str, Any], worker_function: dict[str, Any]
) -> None:
    queue = resource(template, "JobsQueue", "AWS::SQS::Queue")["Properties"]
    timeout = function_property(template, worker_function, "Timeout")
    assert queue["VisibilityTimeout"] >= 6 * timeout


def test_jobs_queue_redrives_to_its_dead_letter_queue(template: dict[str, Any]) -> None:
    queue = resource(template, "JobsQueue", "AWS::SQS::Queue")["Properties"]
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}
    assert 2 <= redrive["maxReceiveCount"] <= 5
    dead = resource(template, "JobsDeadLetterQueue", "AWS::SQS::Queue")["Properties"]
    # Dead letters must outlive the original messages, or they expire before anyone looks.
    assert dead["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]


STATEFUL = {
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
    "AWS::Logs::LogGroup",
}


def test_every_stateful_resource_is_kept_when_deleted_or_replaced(
    template: dict[str, Any],
) -> None:
    kept = {
        name: found
        for kind in STATEFUL
        for name, found in resources_of_type(template, kind).items()
    }
    assert {"JobsTable", "IdempotencyTable", "JobsQueue", "JobsDeadLetterQueue"} <= set(kept)
    assert {"AsyncFailureQueue", "ImagesBucket", "ApiAccessLogGroup"} <= set(kept)
    for name, found in kept.items():
        assert found.get("DeletionPolicy") == "Retain", name
        assert found.get("UpdateReplacePolicy") == "Retain", name


@pytest.mark.parametrize(
    ("name", "key"), [("JobsTable", "job_id"), ("IdempotencyTable", "pk"), ("RealtimeTable", "pk")]
)
def test_tables_are_on_demand_with_a_string_key_and_ttl(
    template: dict[str, Any], name: str, key: str
) -> None:
    table = resource(template, name, "AWS::DynamoDB::Table")["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": key, "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


# ---------------------------------------------------------------------------- IAM


@pytest.fixture(scope="module")
def gateway_role(template: dict[str, Any], gateway_function: dict[str, Any]) -> dict[str, Any]:
    return role_of(template, gateway_function)


@pytest.fixture(scope="module")
def worker_role(template: dict[str, Any], worker_function: dict[str, Any]) -> dict[str, Any]:
    return role_of(template, worker_function)


def test_functions_use_their_own_roles_without_managed_policies(
    gateway_role: dict[str, Any], worker_role: dict[str, Any]
) -> None:
    # With a role of its own, SAM attaches no AWS managed policy (AWSLambdaBasicExecutionRole,
    # AWSLambdaSQSQueueExecutionRole, AWSXrayWriteOnlyAccess all grant on "*").
    assert gateway_role is not worker_role
    for role in (gateway_role, worker_role):
        assert "ManagedPolicyArns" not in role["Properties"]
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]


def test_no_wildcards_except_where_aws_requires_them(template: dict[str, Any]) -> None:
    policy_statements = [
        statement
        for role in resources_of_type(template, "AWS::IAM::Role").values()
        for statement in statements(role)
    ] + [
        statement
        for policy in resources_of_type(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert len(policy_statements) > 10
    for statement in policy_statements:
        assert statement["Effect"] == "Allow"
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), actions
        if "*" in as_list(statement["Resource"]):
            # X-Ray's write actions support no resource-level permissions.
            assert set(actions) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_gateway_reads_exactly_the_named_secrets(gateway_role: dict[str, Any]) -> None:
    granted = grants(gateway_role, "secretsmanager:GetSecretValue")
    assert sorted(map(str, granted)) == sorted(
        map(str, [{"Ref": "ProviderSecretArn"}, {"Ref": "ClientKeysSecretArn"}])
    )


def test_worker_reads_the_provider_secret_only(worker_role: dict[str, Any]) -> None:
    assert grants(worker_role, "secretsmanager:GetSecretValue") == [{"Ref": "ProviderSecretArn"}]


def test_functions_only_write_objects_under_the_image_prefix(
    gateway_role: dict[str, Any], worker_role: dict[str, Any]
) -> None:
    for role in (gateway_role, worker_role):
        s3_statements = [
            statement
            for statement in statements(role)
            if any(action.startswith("s3:") for action in as_list(statement["Action"]))
            and as_list(statement["Resource"]) != [IDEMPOTENT_ANSWERS]
            and statement.get("Sid") not in EDIT_INPUT_GRANTS
        ]
        assert s3_statements, "the role must be able to store images"
        for statement in s3_statements:
            # Links are signed by the signer role; nothing lists the bucket.
            assert as_list(statement["Action"]) == ["s3:PutObject"]
            assert as_list(statement["Resource"]) == [IMAGE_OBJECTS]


def test_edit_inputs_are_read_from_images_and_uploads_and_kept_only_as_uploads(
    template: dict[str, Any], gateway_role: dict[str, Any], worker_role: dict[str, Any]
) -> None:
    # The gateway accepts edits (HTTP, events) and keeps job inputs as uploads; the worker
    # reads them back, and accepts edits sent as SQS messages the same way.
    for role in (gateway_role, worker_role):
        (read,) = [s for s in statements(role) if s.get("Sid") == "ReadEditInputs"]
        assert as_list(read["Action"]) == ["s3:GetObject"]
        assert as_list(read["Resource"]) == [IMAGE_OBJECTS, UPLOAD_OBJECTS]
        (keep,) = [s for s in statements(role) if s.get("Sid") == "KeepEditJobInputs"]
        assert (as_list(keep["Action"]), as_list(keep["Resource"])) == (
            ["s3:PutObject"],
            [UPLOAD_OBJECTS],
        )
    prefixes = template["Mappings"]["Images"]["Storage"]
    assert len({prefixes["Prefix"], prefixes["UploadsPrefix"], prefixes["IdempotencyPrefix"]}) == 3
    rules = template["Resources"]["ImagesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (expiry,) = [
        rule
        for rule in rules
        if rule.get("Prefix") == {"Fn::FindInMap": ["Images", "Storage", "UploadsPrefix"]}
    ]
    assert expiry["ExpirationInDays"] == 1


def test_only_the_gateway_keeps_idempotent_answers_under_their_own_prefix(
    template: dict[str, Any], gateway_role: dict[str, Any], worker_role: dict[str, Any]
) -> None:
    kept = [s for s in statements(gateway_role) if as_list(s["Resource"]) == [IDEMPOTENT_ANSWERS]]
    assert [sorted(as_list(s["Action"])) for s in kept] == [["s3:GetObject", "s3:PutObject"]]
    assert not [s for s in statements(worker_role) if IDEMPOTENT_ANSWERS in as_list(s["Resource"])]
    prefixes = template["Mappings"]["Images"]["Storage"]
    assert prefixes["IdempotencyPrefix"] != prefixes["Prefix"]  # images stay unreadable
    rules = template["Resources"]["ImagesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {"Fn::FindInMap": ["Images", "Storage", "IdempotencyPrefix"]} in [
        rule.get("Prefix") for rule in rules
    ]


def test_gateway_may_submit_jobs_and_the_worker_may_poll_them(
    gateway_role: dict[str, Any], worker_role: dict[str, Any]
) -> None:
    queue = {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert queue in grants(gateway_role, "sqs:SendMessage")
    assert all(queue not in grants(gateway_role, action) for action in SQS_POLLER_ACTIONS)
    for action in SQS_POLLER_ACTIONS:
        assert grants(worker_role, action) == [queue], action
    assert grants(worker_role, "sqs:SendMessage") == []


def test_sqs_and_dynamodb_grants_name_only_this_stacks_resources(
    gateway_role: dict[str, Any], worker_role: dict[str, Any]
) -> None:
    queues = {
        str({"Fn::GetAtt": ["JobsQueue", "Arn"]}),
        str({"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]}),
    }
    tables = [
        {"Fn::GetAtt": ["JobsTable", "Arn"]},
        {"Fn::GetAtt": ["IdempotencyTable", "Arn"]},
    ]
    realtime = {"Fn::GetAtt": ["RealtimeTable", "Arn"]}
    # The gateway issues progress tokens; the worker reads subscribers and forgets gone ones.
    assert grants(gateway_role, "dynamodb:PutItem") == [*tables, realtime]
    assert grants(gateway_role, "dynamodb:UpdateItem") == tables
    assert grants(worker_role, "dynamodb:DeleteItem") == [realtime]
    tables_and_realtime = [*tables, realtime]
    for role in (gateway_role, worker_role):
        for statement in statements(role):
            actions = as_list(statement["Action"])
            resources = as_list(statement["Resource"])
            if any(action.startswith("sqs:") for action in actions):
                assert {str(item) for item in resources} <= queues
            if any(action.startswith("dynamodb:") for action in actions):
                assert set(actions) <= ITEM_ACTIONS  # item-level: no Scan, no table admin
                assert len(resources) == 1
                assert resources[0] in tables_and_realtime
        # Every table reachable, and nothing ever deletes a job (their TTL does).
        assert grants(role, "dynamodb:GetItem")[:2] == tables
        assert {"Fn::GetAtt": ["JobsTable", "Arn"]} not in grants(role, "dynamodb:DeleteItem")


def test_logs_go_to_each_functions_own_log_group(
    template: dict[str, Any],
    gateway_function: dict[str, Any],
    worker_function: dict[str, Any],
    gateway_role: dict[str, Any],
    worker_role: dict[str, Any],
) -> None:
    for function, role in ((gateway_function, gateway_role), (worker_function, worker_role)):
        log_group = function["Properties"]["LoggingConfig"]["LogGroup"]
        resource(template, log_group["Ref"], "AWS::Logs::LogGroup")
        assert grants(role, "logs:PutLogEvents") == [{"Fn::GetAtt": [log_group["Ref"], "Arn"]}]
        assert grants(role, "logs:CreateLogGroup") == []


# ---------------------------------------------------------------------------- outputs, samconfig


def test_outputs_name_every_url_and_resource_an_operator_needs(template: dict[str, Any]) -> None:
    outputs = {name: output["Value"] for name, output in template["Outputs"].items()}
    api_url = outputs["ApiUrl"]["Fn::Sub"]
    assert "${GatewayApi}.execute-api" in api_url
    assert api_url.endswith("/${Stage}/v1")
    assert outputs["FunctionUrl"] == {"Fn::Sub": "${GatewayFunctionUrl.FunctionUrl}v1"}
    assert outputs["ImagesBucketName"] == {"Ref": "ImagesBucket"}
    assert outputs["JobsQueueUrl"] == {"Ref": "JobsQueue"}
    assert outputs["JobsDeadLetterQueueUrl"] == {"Ref": "JobsDeadLetterQueue"}
    assert outputs["AsyncFailureQueueUrl"] == {"Ref": "AsyncFailureQueue"}
    # ARNs the docs tell operators to use (redrive: start-message-move-task --source-arn).
    for queue in ("JobsQueue", "JobsDeadLetterQueue", "AsyncFailureQueue"):
        assert outputs[f"{queue}Arn"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert outputs["FunctionUrlAuthType"] == {"Ref": "FunctionUrlAuthType"}
    assert outputs["ApiAccessLogGroupName"] == {"Ref": "ApiAccessLogGroup"}
    assert outputs["DashboardName"] == {"Ref": "Dashboard"}
    assert outputs["MetricsNamespace"] == {"Fn::Sub": "imagegw/${AWS::StackName}"}
    assert outputs["JobsTableName"] == {"Ref": "JobsTable"}
    assert outputs["IdempotencyTableName"] == {"Ref": "IdempotencyTable"}
    assert outputs["SignerRoleArn"] == {"Fn::GetAtt": ["SignerRole", "Arn"]}
    for name in ("GatewayFunction", "WorkerFunction"):
        assert outputs[f"{name}Name"] == {"Ref": name}
        assert outputs[f"{name}Arn"] == {"Fn::GetAtt": [name, "Arn"]}


def test_samconfig_has_the_defaults_users_expect() -> None:
    config = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))["default"]
    global_ = config["global"]["parameters"]
    assert global_["stack_name"] == "imagegw"
    assert re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", global_["region"])
    deploy = config["deploy"]["parameters"]
    assert "CAPABILITY_IAM" in deploy["capabilities"].split()
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True
    assert "Stage=dev" in deploy["parameter_overrides"]
    build = config["build"]["parameters"]
    assert build.get("use_container", False) is False  # no Docker needed to build
    assert config["validate"]["parameters"]["lint"] is True


# ---------------------------------------------------------------------------- alarms, dashboard

TOPIC_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: found["Properties"]
        for name, found in resources_of_type(template, "AWS::CloudWatch::Alarm").items()
    }


def alarm_on(template: dict[str, Any], namespace: str, metric: str, dimension: Any) -> Any:
    found = [
        properties
        for properties in alarms(template).values()
        if properties.get("Namespace") == namespace
        and properties.get("MetricName") == metric
        and dimension in [d["Value"] for d in properties.get("Dimensions", [])]
    ]
    assert len(found) == 1, (namespace, metric, dimension)
    return found[0]


def test_alarms_exist_without_a_topic_and_notify_it_when_given(template: dict[str, Any]) -> None:
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    found = alarms(template)
    assert len(found) >= 8
    for name, properties in found.items():
        # Alarms exist whatever the topic; only an optional function's come and go with it.
        condition = template["Resources"][name].get("Condition")
        assert condition in (None, "StreamingEnabled"), name
        assert properties["AlarmActions"] == TOPIC_ACTIONS, name
        assert properties["OKActions"] == TOPIC_ACTIONS, name
        # A quiet stack has no datapoints; that is not a failure.
        assert properties["TreatMissingData"] == "notBreaching", name
        assert properties["AlarmDescription"], name


@pytest.mark.parametrize("queue", ["JobsDeadLetterQueue", "AsyncFailureQueue"])
def test_a_message_in_a_failure_queue_raises_an_alarm(template: dict[str, Any], queue: str) -> None:
    alarm = alarm_on(
        template,
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"Fn::GetAtt": [queue, "QueueName"]},
    )
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


@pytest.mark.parametrize(
    "function", ["GatewayFunction", "WorkerFunction", "WebSocketFunction", "StreamingFunction"]
)
@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_function_errors_and_throttles_raise_alarms(
    template: dict[str, Any], function: str, metric: str
) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    assert set(functions) == {
        "GatewayFunction",
        "WorkerFunction",
        "WebSocketFunction",
        "StreamingFunction",
    }
    alarm = alarm_on(template, "AWS/Lambda", metric, {"Ref": function})
    assert alarm["Statistic"] == "Sum"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_api_5xx_raise_an_alarm(template: dict[str, Any]) -> None:
    alarm = alarm_on(template, "AWS/ApiGateway", "5XXError", {"Ref": "Stage"})
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    # The REST API's name, as GatewayApi sets it.
    api = resource(template, "GatewayApi", "AWS::Serverless::Api")["Properties"]
    assert dimensions["ApiName"] == api["Name"] == {"Fn::Sub": "${AWS::StackName}-api"}
    assert alarm["Statistic"] == "Sum"


def test_upstream_failures_from_the_gateways_metrics_raise_an_alarm(
    template: dict[str, Any],
) -> None:
    (alarm,) = [
        properties
        for properties in alarms(template).values()
        if "UpstreamFailures" in json.dumps(properties.get("Metrics", []))
    ]
    (query,) = alarm["Metrics"]
    # Every provider's failures summed, in this stack's own namespace (the functions' setting).
    assert query["Expression"] == {
        "Fn::Sub": 'SELECT SUM(UpstreamFailures) FROM SCHEMA("imagegw/${AWS::StackName}", '
        "provider, service)"
    }
    assert query["ReturnData"] is True


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    dashboard = resource(template, "Dashboard", "AWS::CloudWatch::Dashboard")["Properties"]
    text, variables = dashboard["DashboardBody"]["Fn::Sub"]
    assert set(variables) == {
        "Namespace",
        "JobsQueueName",
        "JobsDeadLetterQueueName",
        "AsyncFailureQueueName",
    }
    assert variables["Namespace"] == {"Fn::Sub": "imagegw/${AWS::StackName}"}
    substituted = re.sub(r"\$\{[A-Za-z:.]+\}", "x", text)
    body: dict[str, Any] = json.loads(substituted)
    return body


def test_dashboard_shows_the_gateways_own_metrics(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    titles = [widget["properties"]["title"] for widget in body["widgets"]]
    assert len(titles) == len(set(titles))
    text = json.dumps(body)
    for metric in (
        "ImagesGenerated",
        "UpstreamLatency",
        "UpstreamFailures",
        "GenerationErrors",
        "StorageFallbacks",
    ):
        assert f'MetricName=\\"{metric}\\"' in text, metric
    for aws_metric in ("Count", "Invocations", "5XXError", "Throttles", "Errors"):
        assert f'"{aws_metric}"' in text, aws_metric
    # Upstream failures by provider: the SEARCH keeps the provider dimension.
    assert "{x,provider,service} MetricName" in text


# ---------------------------------------------------------------------------- progress WebSocket


def test_the_progress_websocket_routes_every_event_to_its_function(
    template: dict[str, Any],
) -> None:
    api = resource(template, "ProgressWebSocketApi", "AWS::ApiGatewayV2::Api")["Properties"]
    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.type"
    integration = resource(
        template, "ProgressWebSocketIntegration", "AWS::ApiGatewayV2::Integration"
    )["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert "${WebSocketFunction.Arn}" in integration["IntegrationUri"]["Fn::Sub"]
    routes = resources_of_type(template, "AWS::ApiGatewayV2::Route").values()
    keys = {route["Properties"]["RouteKey"] for route in routes}
    assert keys == {"$connect", "$disconnect", "$default", "subscribe", "unsubscribe"}
    for route in routes:
        assert route["Properties"]["Target"] == {
            "Fn::Sub": "integrations/${ProgressWebSocketIntegration}"
        }
    stage = resource(template, "ProgressWebSocketStage", "AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["StageName"] == {"Ref": "Stage"}
    assert stage["DefaultRouteSettings"]["DataTraceEnabled"] is False
    _, function = function_by_handler(template, "imagegw.entrypoints.websocket.handler")
    assert function["Properties"]["Role"] == {"Fn::GetAtt": ["WebSocketRole", "Arn"]}
    permission = resource(template, "WebSocketInvokePermission", "AWS::Lambda::Permission")
    assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert "${ProgressWebSocketApi}/*" in permission["Properties"]["SourceArn"]["Fn::Sub"]


def test_the_websocket_function_may_do_only_what_its_events_need(
    template: dict[str, Any],
) -> None:
    role = resource(template, "WebSocketRole", "AWS::IAM::Role")
    assert "ManagedPolicyArns" not in role["Properties"]
    assert grants(role, "secretsmanager:GetSecretValue") == [{"Ref": "ClientKeysSecretArn"}]
    # Jobs are read (ownership), never written.
    assert grants(role, "dynamodb:GetItem") == [
        {"Fn::GetAtt": ["JobsTable", "Arn"]},
        {"Fn::GetAtt": ["RealtimeTable", "Arn"]},
    ]
    assert grants(role, "dynamodb:PutItem") == [{"Fn::GetAtt": ["RealtimeTable", "Arn"]}]
    assert grants(role, "logs:PutLogEvents") == [{"Fn::GetAtt": ["WebSocketLogGroup", "Arn"]}]
    pushes = "${ProgressWebSocketApi}/${Stage}/POST/@connections/*"
    worker = resource(template, "WorkerRole", "AWS::IAM::Role")
    for role_ in (role, worker):
        (target,) = grants(role_, "execute-api:ManageConnections")
        assert target["Fn::Sub"].endswith(pushes)
    gateway = resource(template, "GatewayRole", "AWS::IAM::Role")
    assert grants(gateway, "execute-api:ManageConnections") == []
    outputs = template["Outputs"]
    assert outputs["WebSocketUrl"]["Value"]["Fn::Sub"].startswith("wss://${ProgressWebSocketApi}")
    assert outputs["RealtimeTableName"]["Value"] == {"Ref": "RealtimeTable"}


# ---------------------------------------------------------------------------- Amazon Bedrock


def bedrock_models() -> set[str]:
    from imagegw.catalog import load_catalog

    return {spec.upstream_model for spec in load_catalog() if spec.provider == "bedrock"}


# A cross-Region inference profile's id starts with its geography ("us.stability...").
PROFILE_PREFIXES = ("us.", "eu.", "apac.")


def bedrock_grants() -> set[str]:
    """The ARNs the catalog's bedrock/* models need: a foundation model in the chosen Region, or
    an inference profile there plus its model in every Region the profile routes to."""
    from imagegw.catalog import load_catalog

    partition = "arn:${AWS::Partition}:bedrock"
    grants: set[str] = set()
    for spec in load_catalog():
        if spec.provider != "bedrock":
            continue
        model = spec.upstream_model
        if not model.startswith(PROFILE_PREFIXES):
            assert spec.upstream_option("profile_regions") is None
            grants.add(f"{partition}:${{BedrockRegion}}::foundation-model/{model}")
            continue
        regions = (spec.upstream_option("profile_regions") or "").split()
        assert regions, f"{spec.id}: an inference profile needs upstream_options.profile_regions"
        grants.add(f"{partition}:${{BedrockRegion}}:${{AWS::AccountId}}:inference-profile/{model}")
        base = model.split(".", 1)[1]
        grants.update(f"{partition}:{region}::foundation-model/{base}" for region in regions)
    return grants


def test_bedrock_is_off_by_default_and_one_parameter_enables_it(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["BedrockRegion"]
    assert parameter["Default"] == ""
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch("us-west-2")
    assert not pattern.fullmatch("us-west-2.example.com")
    assert template["Conditions"]["BedrockEnabled"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "BedrockRegion"}, ""]}]
    }
    for handler in (GATEWAY_HANDLER, WORKER_HANDLER):
        environment = function_environment(template, function_by_handler(template, handler)[1])
        assert environment["IMAGEGW_BEDROCK_REGION"] == {"Ref": "BedrockRegion"}


def test_bedrock_grant_is_exactly_the_catalogs_models_in_the_chosen_region(
    template: dict[str, Any], gateway_function: dict[str, Any], worker_function: dict[str, Any]
) -> None:
    policy = resource(template, "BedrockInvokePolicy", "AWS::IAM::Policy")
    assert policy["Condition"] == "BedrockEnabled"
    roles = policy["Properties"]["Roles"]
    assert sorted(role["Ref"] for role in roles) == sorted(
        function["Properties"]["Role"]["Fn::GetAtt"][0]
        for function in (gateway_function, worker_function)
    )
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "bedrock:InvokeModel"
    granted = [arn["Fn::Sub"] for arn in statement["Resource"]]
    assert len(bedrock_models()) == 4
    assert len(granted) == len(set(granted))
    assert set(granted) == bedrock_grants()
    # The inpainting profile and its three Regions, nothing broader (no wildcard).
    assert len(granted) == 3 + 1 + 3
    assert not any("*" in arn for arn in granted)


def test_no_other_statement_mentions_bedrock(template: dict[str, Any]) -> None:
    others = [
        statement
        for name, role in resources_of_type(template, "AWS::IAM::Role").items()
        for statement in statements(role)
    ] + [
        statement
        for name, policy in resources_of_type(template, "AWS::IAM::Policy").items()
        if name != "BedrockInvokePolicy"
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert others
    assert all("bedrock" not in str(statement) for statement in others)


def test_the_optional_streaming_function_url_runs_the_app_behind_the_web_adapter(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["EnableStreamingFunctionUrl"]
    assert parameter["Default"] == "false"
    assert template["Conditions"]["StreamingEnabled"] == {
        "Fn::Equals": [{"Ref": "EnableStreamingFunctionUrl"}, "true"]
    }
    function = resource(template, "StreamingFunction", "AWS::Serverless::Function")
    assert function["Condition"] == "StreamingEnabled"
    properties = function["Properties"]
    assert properties["Handler"] == "run.sh"
    run_sh = REPO / "functions" / "gateway" / "run.sh"
    assert run_sh.stat().st_mode & 0o111  # the adapter executes it
    assert "imagegw.entrypoints.app:create_app --factory" in run_sh.read_text(encoding="utf-8")
    (adapter,) = properties["Layers"]
    assert adapter["Fn::Sub"].endswith(":753240598075:layer:LambdaAdapterLayerArm64:30")
    environment = properties["Environment"]["Variables"]
    assert environment["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert environment["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert environment["AWS_LWA_READINESS_CHECK_PATH"] == "/health"
    assert float(environment["IMAGEGW_UPSTREAM_TIMEOUT_SECONDS"]) < properties["Timeout"]
    url = resource(template, "StreamingFunctionUrl", "AWS::Lambda::Url")
    assert url["Condition"] == "StreamingEnabled"
    assert url["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    assert url["Properties"]["AuthType"] == {"Ref": "FunctionUrlAuthType"}
    for name in (
        "StreamingFunctionUrlPublicPermission",
        "StreamingFunctionUrlPublicInvokePermission",
    ):
        permission = resource(template, name, "AWS::Lambda::Permission")
        assert permission["Condition"] == "StreamingUrlIsPublic"
    uvicorn = [
        line
        for line in (REPO / "layers" / "deps" / "requirements.txt").read_text("utf-8").splitlines()
        if line.startswith("uvicorn==")
    ]
    assert uvicorn, "the layer must carry uvicorn for run.sh"
