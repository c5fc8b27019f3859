"""What the gateway writes to stdout under Lambda: JSON logs and EMF metrics.

CloudWatch reads both from the function's output, so the tests read the same output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from lambda_harness import DEV_API_KEY, FakeLambdaContext, header, load_event, response_body

pytest_plugins = ["lambda_fixtures"]

Handler = Callable[[Any, Any], dict[str, Any]]
PROMPT = "a red bicycle"


def output_lines(captured: str) -> list[dict[str, Any]]:
    lines = []
    for line in captured.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def metrics(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if "_aws" in line and name in line]


def logs(lines: list[dict[str, Any]], message: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("message") == message]


def test_a_generation_emits_metrics_and_correlated_logs_without_secrets(
    cold_handler: Handler, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    response = cold_handler(load_event("function-url-generate"), lambda_context)
    assert response["statusCode"] == 200
    captured = capsys.readouterr().out
    lines = output_lines(captured)

    (generated,) = metrics(lines, "ImagesGenerated")
    assert generated["ImagesGenerated"] == [1.0]
    assert (generated["provider"], generated["model"]) == ("local", "local/sketch")
    (directive,) = generated["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "imagegw"
    assert directive["Dimensions"] == [["service", "provider", "model"]]
    (latency,) = metrics(lines, "UpstreamLatency")
    assert latency["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Milliseconds"
    assert latency["UpstreamLatency"][0] >= 0
    by_model, by_key = metrics(lines, "GenerationCost")
    assert (by_model["provider"], by_model["model"], by_model["GenerationCost"]) == (
        "local",
        "local/sketch",
        [0.0],
    )
    assert (by_key["key"], by_key["GenerationCost"]) == ("env-key-1", [0.0])
    assert by_key["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "key"]]

    request_id = header(response, "x-request-id")
    (line,) = logs(lines, "generated")
    assert line["correlation_id"] == request_id
    assert line["function_request_id"] == lambda_context.aws_request_id
    assert line["service"] == "imagegw"
    assert (line["model"], line["n"], line["client"]) == ("local/sketch", 1, "env-key-1")
    access = [entry for entry in lines if entry.get("message", "").startswith("POST ")]
    assert [entry["correlation_id"] for entry in access] == [request_id]

    # Never the prompt (unless switched on), the key, or image bytes.
    assert PROMPT not in captured
    assert DEV_API_KEY not in captured
    assert "iVBORw0KGgo" not in captured


def test_prompts_are_logged_only_when_the_operator_says_so(
    monkeypatch: pytest.MonkeyPatch,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IMAGEGW_LOG_PROMPTS", "true")
    cold_handler(load_event("rest-v1-generate"), lambda_context)
    (line,) = logs(output_lines(capsys.readouterr().out), "generated")
    assert line["prompt"] == PROMPT


def test_errors_are_counted_by_code_provider_and_model(
    cold_handler: Handler, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("invoke-generate")
    event["request"]["size"] = "7x7"
    assert cold_handler(event, lambda_context)["error"]["code"] == "invalid_value"
    event["request"]["model"] = "nobody/nothing"
    # Another invocation (each has its own request id, and so its own job).
    second = FakeLambdaContext("second-invocation")
    assert cold_handler(event, second)["error"]["code"] == "model_not_found"
    lines = output_lines(capsys.readouterr().out)
    errors = [
        (line["error_code"], line["provider"], line["model"], line["GenerationErrors"])
        for line in metrics(lines, "GenerationErrors")
    ]
    assert errors == [
        ("invalid_value", "local", "local/sketch", [1.0]),
        ("model_not_found", "none", "none", [1.0]),
    ]


def test_metrics_can_be_switched_off(
    monkeypatch: pytest.MonkeyPatch,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("IMAGEGW_METRICS", "false")
    cold_handler(load_event("invoke-generate"), lambda_context)
    lines = output_lines(capsys.readouterr().out)
    assert [line for line in lines if "_aws" in line] == []
    assert logs(lines, "generated")


def test_an_upstream_failure_is_counted_by_provider_for_the_alarm(
    monkeypatch: pytest.MonkeyPatch,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Nothing listens on port 9 of loopback: the upstream is unreachable (a 502, never billed).
    monkeypatch.setenv("IMAGEGW_OPENAI_API_KEY", "sk-upstream-test")
    monkeypatch.setenv("IMAGEGW_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("IMAGEGW_UPSTREAM_MAX_ATTEMPTS", "1")
    event = load_event("invoke-generate")
    event["request"] = {"model": "openai/gpt-image-2", "prompt": PROMPT, "size": "1024x1024"}
    assert cold_handler(event, lambda_context)["error"]["code"] == "upstream_unreachable"
    # A caller's mistake is an error answered, not an upstream failure.
    event["request"]["size"] = "7x7"
    second = FakeLambdaContext("second-invocation")
    assert cold_handler(event, second)["error"]["code"] == "invalid_value"
    lines = output_lines(capsys.readouterr().out)
    (failure,) = metrics(lines, "UpstreamFailures")
    assert failure["UpstreamFailures"] == [1.0]
    assert failure["provider"] == "openai"
    (directive,) = failure["_aws"]["CloudWatchMetrics"]
    # The dimension set template.yaml's alarm query names: SCHEMA(ns, provider, service).
    assert sorted(directive["Dimensions"][0]) == ["provider", "service"]
    assert len(metrics(lines, "GenerationErrors")) == 2


def test_a_storage_fallback_is_counted(
    monkeypatch: pytest.MonkeyPatch,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    lambda_storage_dir: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The store's directory cannot be created (a file is in the way): url falls back to inline.
    lambda_storage_dir.parent.mkdir(parents=True, exist_ok=True)
    lambda_storage_dir.write_bytes(b"not a directory")
    event = load_event("rest-v1-generate")
    event["body"] = json.dumps({**json.loads(event["body"]), "response_format": "url"})
    answer = json.loads(response_body(cold_handler(event, lambda_context)))
    assert "b64_json" in answer["data"][0]
    (fallback,) = metrics(output_lines(capsys.readouterr().out), "StorageFallbacks")
    assert fallback["StorageFallbacks"] == [1.0]
    assert fallback["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
