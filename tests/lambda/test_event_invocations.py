"""events/ samples for EventBridge, direct invocation and SQS through the real handlers, with
the jobs table and queue in moto, each event twice in one process where redelivery matters.

The local provider draws real PNGs into the local store; counting the stored files is how the
tests see how many times a generation ran.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_harness import JobsAws, decoded
from lambda_harness import FakeLambdaContext, header, load_event, response_body, with_authorization

import imagegw.entrypoints.worker

pytest_plugins = ["lambda_fixtures", "aws_fixtures"]

Handler = Callable[[Any, Any], Any]
OTHER_KEY = "sk-imagegw-other"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _two_keys(monkeypatch: pytest.MonkeyPatch, cold_handler: Handler) -> None:
    # env-key-1 is the development key of the samples, env-key-2 someone else's.
    monkeypatch.setenv("IMAGEGW_API_KEYS", f"sk-imagegw-dev,{OTHER_KEY}")


def stored_images(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.png")) if directory.exists() else []


def get_job_event(job_id: str, authorization: str = "Bearer sk-imagegw-dev") -> dict[str, Any]:
    event = load_event("rest-v1-models")
    path = f"/v1/images/jobs/{job_id}"
    event["path"] = path
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["requestContext"]["path"] = f"/Prod{path}"
    return with_authorization(event, authorization)


def async_generate_event() -> dict[str, Any]:
    event = load_event("rest-v1-generate")
    event["headers"]["Prefer"] = "respond-async"
    event["multiValueHeaders"]["Prefer"] = ["respond-async"]
    return event


def image_key(url: str) -> str:
    return url.split("?", 1)[0].rsplit("/", 1)[1]


def read_job(handler: Handler, job_id: str, context: FakeLambdaContext) -> Any:
    """The job as its owner (the development key) reads it; None when there is none."""
    response = handler(get_job_event(job_id), context)
    if response["statusCode"] == 404:
        return None
    assert response["statusCode"] == 200, response.get("body")
    assert header(response, "cache-control") == "no-store"
    view: dict[str, Any] = json.loads(response_body(response))
    return view


def assert_job_links_point_at_stored_images(view: dict[str, Any], directory: Path) -> None:
    assert view["status"] == "succeeded"
    (item,) = view["result"]["data"]
    assert "/v1/images/files/" in item["url"]
    assert "signature=" in item["url"]
    assert isinstance(item["expires_at"], int)
    assert (directory / image_key(item["url"])).read_bytes().startswith(PNG)
    assert view["result"]["model"] == "local/sketch"
    assert "error" not in view


# Direct invocation ---------------------------------------------------------------------------


def test_direct_invoke_sample_returns_the_openai_result_and_records_it_as_a_job(
    cold_handler: Handler, lambda_context: FakeLambdaContext, lambda_storage_dir: Path
) -> None:
    results = [cold_handler(load_event("invoke-generate"), lambda_context) for _ in range(2)]
    for result in results:
        assert set(result) >= {"created", "data", "model"}
        (item,) = result["data"]
        assert "b64_json" not in item
        assert (lambda_storage_dir / image_key(item["url"])).read_bytes().startswith(PNG)
    # The same request id twice (Lambda retrying an asynchronous invoke): one generation.
    assert len(stored_images(lambda_storage_dir)) == 1
    # Another invocation (a new request id) is another generation.
    cold_handler(load_event("invoke-generate"), FakeLambdaContext("another-request-id"))
    assert len(stored_images(lambda_storage_dir)) == 2


def test_an_asynchronous_invoke_result_can_be_read_by_the_key_it_names(
    cold_handler: Handler, lambda_storage_dir: Path
) -> None:
    # `aws lambda invoke --invocation-type Event` discards the answer; the caller has the
    # request id (x-amzn-RequestId), and the key it named reads the job.
    event = {**load_event("invoke-generate"), "client": "env-key-1"}
    cold_handler(event, FakeLambdaContext("0f6e3c2a-async-invoke"))
    view = read_job(cold_handler, "invoke-0f6e3c2a-async-invoke", FakeLambdaContext())
    assert_job_links_point_at_stored_images(view, lambda_storage_dir)
    # Someone else's key gets the same 404 as for an unknown id.
    other = cold_handler(
        get_job_event("invoke-0f6e3c2a-async-invoke", f"Bearer {OTHER_KEY}"), FakeLambdaContext()
    )
    assert other["statusCode"] == 404


def test_a_direct_invoke_naming_an_unknown_key_is_refused_before_generating(
    cold_handler: Handler, lambda_context: FakeLambdaContext, lambda_storage_dir: Path
) -> None:
    event = {**load_event("invoke-generate"), "client": "nobody"}
    result = cold_handler(event, lambda_context)
    assert result["error"]["code"] == "unknown_client"
    assert result["error"]["param"] == "client"
    assert stored_images(lambda_storage_dir) == []


def test_a_job_id_taken_by_another_refused_request_is_a_conflict(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    event = {**load_event("invoke-generate"), "job_id": "order-1"}
    event["request"] = {**event["request"], "size": "7x7"}
    assert cold_handler(event, lambda_context)["error"]["code"] == "invalid_value"
    # The same refused request again: the recorded job. Another one under that id: a conflict,
    # never the first request's outcome.
    assert cold_handler(event, lambda_context)["error"]["code"] == "invalid_value"
    event["request"] = {**event["request"], "size": "9x9"}
    assert cold_handler(event, lambda_context)["error"]["code"] == "job_id_conflict"


def test_direct_invoke_without_a_job_id_delivers_links_only(
    cold_handler: Handler, lambda_context: FakeLambdaContext, lambda_storage_dir: Path
) -> None:
    # Its result is recorded as a job, and jobs deliver links: b64_json is refused before
    # anything is generated (it would not fit an invocation's 6 MB answer anyway).
    request = {**load_event("invoke-generate")["request"], "response_format": "b64_json"}
    result = cold_handler(request, lambda_context)
    assert result["error"]["code"] == "invalid_value"
    assert result["error"]["param"] == "response_format"
    assert stored_images(lambda_storage_dir) == []


def test_direct_invoke_with_a_bad_request_gets_the_openai_error(
    cold_handler: Handler, lambda_context: FakeLambdaContext, lambda_storage_dir: Path
) -> None:
    event = load_event("invoke-generate")
    event["request"]["size"] = "7x7"
    for _ in range(2):
        result = cold_handler(event, lambda_context)
        assert set(result) == {"error"}
        assert result["error"]["code"] == "invalid_value"
        assert result["error"]["param"] == "size"
    assert stored_images(lambda_storage_dir) == []


# EventBridge -> queue -> worker -> GET --------------------------------------------------------


def test_eventbridge_sample_becomes_a_job_that_the_worker_runs_once(
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    lambda_storage_dir: Path,
) -> None:
    event = load_event("eventbridge-generate")
    queued = cold_handler(event, lambda_context)
    assert queued["id"] == "catalog-item-1234"
    assert queued["status"] == "queued"
    assert queued["object"] == "image.generation.job"

    records = jobs_aws.receive()
    assert [json.loads(record["body"]) for record in records] == [{"job_id": "catalog-item-1234"}]
    # The same message delivered twice (SQS is at-least-once): one generation.
    assert imagegw.entrypoints.worker.handler({"Records": records}, lambda_context) == {
        "batchItemFailures": []
    }
    assert jobs_aws.deliver(imagegw.entrypoints.worker.handler, lambda_context) == {
        "batchItemFailures": []
    }
    assert jobs_aws.receive() == []
    assert len(stored_images(lambda_storage_dir)) == 1

    item = jobs_aws.item("catalog-item-1234")
    assert item is not None
    assert item["status"] == {"S": "succeeded"}
    assert item["client"] == {"S": "env-key-1"}
    result = decoded(item["result"])
    # Keys are stored, never links: links are signed when the job is read.
    assert "url" not in json.dumps(result)
    (stored,) = result["images"]
    assert (lambda_storage_dir / stored["key"]).exists()

    # EventBridge retrying the same event finds the finished job: no new message, no new image.
    again = cold_handler(event, lambda_context)
    assert again["status"] == "succeeded"
    assert jobs_aws.receive() == []
    assert len(stored_images(lambda_storage_dir)) == 1

    view = read_job(cold_handler, "catalog-item-1234", lambda_context)
    assert_job_links_point_at_stored_images(view, lambda_storage_dir)
    assert image_key(view["result"]["data"][0]["url"]) == stored["key"]


def test_only_the_key_named_by_the_job_may_read_it(
    jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    cold_handler(load_event("eventbridge-generate"), lambda_context)
    for job_id in ("catalog-item-1234", "no-such-job"):
        response = cold_handler(get_job_event(job_id, f"Bearer {OTHER_KEY}"), lambda_context)
        assert response["statusCode"] == 404
        body = json.loads(response_body(response))
        assert body["error"]["code"] == "job_not_found"


def test_an_eventbridge_request_that_fails_validation_is_recorded_as_a_failed_job(
    jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("eventbridge-generate")
    event["detail"]["request"]["quality"] = "ultra"
    for _ in range(2):
        view = cold_handler(event, lambda_context)
        assert view["status"] == "failed"
        assert view["error"]["code"] == "invalid_value"
        assert view["error"]["param"] == "quality"
    assert jobs_aws.receive() == []
    assert read_job(cold_handler, "catalog-item-1234", lambda_context)["status"] == "failed"


def test_a_refused_request_too_large_for_a_job_record_is_still_recorded_as_failed(
    jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    # 500,000 characters of prompt: refused (400), and more than a DynamoDB item holds
    # (400 KB): the job keeps the request's digest, and the caller still gets the 400.
    event = load_event("eventbridge-generate")
    event["detail"]["request"]["prompt"] = "a fox " * 100_000
    for _ in range(2):
        view = cold_handler(event, lambda_context)
        assert view["status"] == "failed", view
        assert view["error"]["code"] == "string_above_max_length"
    assert read_job(cold_handler, "catalog-item-1234", lambda_context)["status"] == "failed"
    # Another large request under the same id is not the recorded one.
    event["detail"]["request"]["prompt"] = "a cat " * 100_000
    assert cold_handler(event, lambda_context)["error"]["code"] == "job_id_conflict"


def test_eventbridge_without_a_queue_runs_the_job_in_the_invocation(
    monkeypatch: pytest.MonkeyPatch,
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    lambda_storage_dir: Path,
) -> None:
    monkeypatch.delenv("IMAGEGW_JOBS_QUEUE_URL")
    for _ in range(2):
        view = cold_handler(load_event("eventbridge-generate"), lambda_context)
        assert_job_links_point_at_stored_images(view, lambda_storage_dir)
    assert len(stored_images(lambda_storage_dir)) == 1


@pytest.mark.parametrize(
    ("client", "code"), [(None, "malformed_event"), ("nobody", "unknown_client")]
)
def test_an_eventbridge_event_must_name_a_known_client_key(
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    lambda_storage_dir: Path,
    client: str | None,
    code: str,
) -> None:
    # Anyone allowed to put events on the bus can send one: it runs as the key it names, or
    # not at all. Refused before anything is recorded, queued or generated.
    event = load_event("eventbridge-generate")
    if client is None:
        del event["detail"]["client"]
    else:
        event["detail"]["client"] = client
    result = cold_handler(event, lambda_context)
    assert result["error"]["code"] == code
    assert result["error"]["param"] == "client"
    assert jobs_aws.receive() == []
    assert read_job(cold_handler, "catalog-item-1234", lambda_context) is None
    assert stored_images(lambda_storage_dir) == []


def test_an_eventbridge_event_runs_with_the_named_keys_limits(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    lambda_storage_dir: Path,
) -> None:
    # A key allowed only openai/* models: its event for a local model is refused (recorded as
    # a failed job its owner can read), and a key without images:generate cannot send at all.
    keys = {
        "keys": [
            {"name": "openai-only", "sha256": "a" * 64, "models": ["openai/*"]},
            {"name": "reader", "sha256": "b" * 64, "scopes": ["models:read"]},
        ]
    }
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(keys), encoding="utf-8")
    monkeypatch.setenv("IMAGEGW_API_KEYS_FILE", str(keys_file))
    event = load_event("eventbridge-generate")
    event["detail"]["client"] = "openai-only"
    view = cold_handler(event, lambda_context)
    assert view["status"] == "failed"
    assert view["error"]["code"] == "model_not_allowed"
    event["detail"].update(client="reader", job_id="catalog-item-5678")
    assert cold_handler(event, lambda_context)["error"]["code"] == "insufficient_scope"
    assert jobs_aws.receive() == []
    assert stored_images(lambda_storage_dir) == []


# SQS messages from other services ------------------------------------------------------------


def test_sqs_sample_generates_once_however_often_it_is_delivered(
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    lambda_storage_dir: Path,
) -> None:
    event = load_event("sqs-generate")
    for _ in range(2):
        assert imagegw.entrypoints.worker.handler(event, lambda_context) == {
            "batchItemFailures": []
        }
    assert len(stored_images(lambda_storage_dir)) == 1
    job_id = "sqs-059f36b4-87a3-44ab-83d2-661975830a7d"
    assert_job_links_point_at_stored_images(
        read_job(cold_handler, job_id, lambda_context), lambda_storage_dir
    )


def test_one_bad_message_does_not_fail_the_others_in_its_batch(
    jobs_aws: JobsAws, lambda_context: FakeLambdaContext, lambda_storage_dir: Path
) -> None:
    good = load_event("sqs-generate")["Records"][0]
    bad = dict(copy.deepcopy(good), messageId="bad-1", body="{not json")
    result = imagegw.entrypoints.worker.handler({"Records": [bad, good]}, lambda_context)
    assert result == {"batchItemFailures": [{"itemIdentifier": "bad-1"}]}
    assert len(stored_images(lambda_storage_dir)) == 1


def test_the_gateway_handler_serves_sqs_batches_too(
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    lambda_storage_dir: Path,
) -> None:
    assert cold_handler(load_event("sqs-generate"), lambda_context) == {"batchItemFailures": []}
    assert len(stored_images(lambda_storage_dir)) == 1


# Prefer: respond-async over HTTP -------------------------------------------------------------


def test_behind_a_custom_domain_the_202_location_uses_the_public_base_url(
    monkeypatch: pytest.MonkeyPatch,
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
) -> None:
    # The stack's PublicBaseUrl parameter (a base path mapping cannot be seen in the event).
    monkeypatch.setenv("IMAGEGW_PUBLIC_BASE_URL", "https://images.example.com/gw")
    response = cold_handler(async_generate_event(), lambda_context)
    assert response["statusCode"] == 202, response.get("body")
    job_id = json.loads(response_body(response))["id"]
    assert header(response, "location") == (
        f"https://images.example.com/gw/v1/images/jobs/{job_id}"
    )


def test_prefer_respond_async_answers_202_and_the_worker_completes_the_job(
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    lambda_storage_dir: Path,
) -> None:
    response = cold_handler(async_generate_event(), lambda_context)
    assert response["statusCode"] == 202, response.get("body")
    assert header(response, "preference-applied") == "respond-async"
    view = json.loads(response_body(response))
    assert view["status"] == "queued"
    assert (header(response, "location") or "").endswith(f"/v1/images/jobs/{view['id']}")
    assert stored_images(lambda_storage_dir) == []
    assert read_job(cold_handler, view["id"], lambda_context)["status"] == "queued"

    assert jobs_aws.deliver(imagegw.entrypoints.worker.handler, lambda_context) == {
        "batchItemFailures": []
    }
    assert jobs_aws.receive() == []
    done = read_job(cold_handler, view["id"], lambda_context)
    assert_job_links_point_at_stored_images(done, lambda_storage_dir)
    other = cold_handler(get_job_event(view["id"], f"Bearer {OTHER_KEY}"), lambda_context)
    assert other["statusCode"] == 404


def test_an_async_job_cannot_ask_for_inline_images(
    jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    event = async_generate_event()
    body = json.loads(
        base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"]
    )
    event["body"] = json.dumps({**body, "response_format": "b64_json"})
    event["isBase64Encoded"] = False
    for name in ("Content-Length",):
        event["headers"].pop(name, None)
        event["multiValueHeaders"].pop(name, None)
    response = cold_handler(event, lambda_context)
    assert response["statusCode"] == 400
    assert json.loads(response_body(response))["error"]["param"] == "response_format"
    assert jobs_aws.receive() == []


def test_without_a_queue_under_lambda_respond_async_is_not_applied(
    cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    response = cold_handler(async_generate_event(), lambda_context)
    assert response["statusCode"] == 200
    assert header(response, "preference-applied") is None
    assert "b64_json" in json.loads(response_body(response))["data"][0]
