"""One request body, every entry point: the same fallback, delivery as each entry point states.

The catalog's ``down/sketch`` is served by the OpenAI provider pointed at a closed port on
127.0.0.1 (connection refused: never sent, so nothing billed) and lists ``local/sketch`` as its
fallback, which accepts the request identically. Through the real handlers (HTTP over API
Gateway, a direct invocation, a direct invocation with a job id, EventBridge, SQS) the fallback
serves every time; ``response_format`` is b64_json over HTTP, url elsewhere (delivery_policy.py),
and an explicit url is honoured everywhere.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_harness import JobsAws
from lambda_harness import FakeLambdaContext, load_event, response_body, with_authorization

import imagegw.entrypoints.worker
from imagegw.catalog import PACKAGED_CATALOG

pytest_plugins = ["lambda_fixtures", "aws_fixtures"]

Handler = Callable[[Any, Any], Any]
PNG = b"\x89PNG\r\n\x1a\n"
BODY = {"model": "down/sketch", "prompt": "a red bicycle", "size": "256x256"}
DOWN_MODEL = """
[[models]]
id = "down/sketch"
provider = "openai"
upstream_model = "gpt-image-2"
n_max = 10
sizes = ["auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536"]
default_size = "1024x1024"
qualities = ["auto", "low", "medium", "high"]
backgrounds = ["auto", "transparent", "opaque"]
output_formats = ["png", "jpeg", "webp"]
parameters = ["size", "quality", "background", "output_format", "output_compression", "user",
  "safety_identifier"]
prompt_max_chars = 32000
fallbacks = ["local/sketch"]
"""


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(autouse=True)
def _down_upstream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cold_handler: Handler) -> None:
    catalog = tmp_path / "models.toml"
    catalog.write_text(PACKAGED_CATALOG.read_text(encoding="utf-8") + DOWN_MODEL, "utf-8")
    monkeypatch.setenv("IMAGEGW_CATALOG_FILE", str(catalog))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port()}/v1")
    monkeypatch.setenv("IMAGEGW_UPSTREAM_MAX_ATTEMPTS", "1")


def job_view(handler: Handler, job_id: str, context: FakeLambdaContext) -> dict[str, Any]:
    event = load_event("rest-v1-models")
    path = f"/v1/images/jobs/{job_id}"
    event["path"] = path
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["requestContext"]["path"] = f"/Prod{path}"
    response = handler(with_authorization(event, "Bearer sk-imagegw-dev"), context)
    assert response["statusCode"] == 200, response.get("body")
    view: dict[str, Any] = json.loads(response_body(response))
    assert view["status"] == "succeeded", view
    result: dict[str, Any] = view["result"]
    return result


def over_http(handler: Handler, body: dict[str, Any], context: FakeLambdaContext) -> Any:
    event = load_event("rest-v1-generate")
    event["body"] = json.dumps(body)
    response = handler(event, context)
    assert response["statusCode"] == 200, response.get("body")
    return json.loads(response_body(response))


def direct(handler: Handler, body: dict[str, Any], context: FakeLambdaContext) -> Any:
    return handler({"action": "generate", "request": body}, context)


def direct_job(
    handler: Handler, body: dict[str, Any], context: FakeLambdaContext, jobs: JobsAws
) -> Any:
    event = {"action": "generate", "request": body, "job_id": "direct-1", "client": "env-key-1"}
    queued = handler(event, context)
    assert queued["status"] == "queued", queued
    jobs.deliver(imagegw.entrypoints.worker.handler, context)
    return job_view(handler, "direct-1", context)


def eventbridge(
    handler: Handler, body: dict[str, Any], context: FakeLambdaContext, jobs: JobsAws
) -> Any:
    event = load_event("eventbridge-generate")
    event["detail"]["request"] = body
    queued = handler(event, context)
    assert queued["status"] == "queued", queued
    jobs.deliver(imagegw.entrypoints.worker.handler, context)
    return job_view(handler, event["detail"]["job_id"], context)


def sqs(handler: Handler, body: dict[str, Any], context: FakeLambdaContext, jobs: JobsAws) -> Any:
    event = load_event("sqs-generate")
    (record,) = event["Records"]
    record["body"] = json.dumps({"request": body, "client": "env-key-1"})
    answer = imagegw.entrypoints.worker.handler(event, context)
    assert answer == {"batchItemFailures": []}
    return job_view(handler, f"sqs-{record['messageId']}", context)


def assert_fallback_served(result: dict[str, Any], delivered_as: str) -> None:
    assert result["model"] == "local/sketch"
    assert result["fallback_from"] == "down/sketch"
    (item,) = result["data"]
    if delivered_as == "url":
        assert "b64_json" not in item
        assert "/v1/images/files/" in item["url"]
    else:
        assert "url" not in item
        assert base64.b64decode(item["b64_json"]).startswith(PNG)


@pytest.mark.parametrize("response_format", [None, "url"])
def test_http_and_a_direct_invocation_fall_back_alike(
    cold_handler: Handler, lambda_context: FakeLambdaContext, response_format: str | None
) -> None:
    body = {**BODY, **({"response_format": response_format} if response_format else {})}
    assert_fallback_served(
        over_http(cold_handler, body, lambda_context), response_format or "b64_json"
    )
    assert_fallback_served(direct(cold_handler, body, lambda_context), response_format or "url")


@pytest.mark.parametrize("entry", [direct_job, eventbridge, sqs], ids=lambda f: f.__name__)
@pytest.mark.parametrize("response_format", [None, "url"])
def test_every_job_entry_point_falls_back_and_delivers_links(
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    entry: Callable[..., Any],
    response_format: str | None,
) -> None:
    body = {**BODY, **({"response_format": response_format} if response_format else {})}
    assert_fallback_served(entry(cold_handler, body, lambda_context, jobs_aws), "url")


def test_without_a_fallback_the_refused_upstream_is_the_answer_everywhere(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    # The control: with the fallback gone, the same body fails, so the tests above show the
    # fallback serving, not the request somehow reaching the local model directly.
    body = {**BODY, "model": "openai/gpt-image-2", "size": "1024x1024"}
    event = load_event("rest-v1-generate")
    event["body"] = json.dumps(body)
    response = cold_handler(event, lambda_context)
    assert response["statusCode"] == 502
    assert json.loads(response_body(response))["error"]["code"] == "upstream_unreachable"
    assert direct(cold_handler, body, lambda_context)["error"]["code"] == "upstream_unreachable"


def test_the_images_are_counted_for_the_model_that_served(
    cold_handler: Handler, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    direct(cold_handler, BODY, lambda_context)
    metrics = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"') and "ImagesGenerated" in line
    ]
    assert [(m["provider"], m["model"]) for m in metrics] == [("local", "local/sketch")]
