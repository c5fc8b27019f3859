"""Edit jobs from events (``"action": "edit"``): the events/*-edit.json samples through the real
handlers (gateway: direct invocation, EventBridge; worker: SQS), AWS in moto (jobs table, queue,
the images bucket).

The samples name their input image as an object of the gateway's bucket (``s3://``) and the mask
as an upload of the key they name (``file_id``); the tests put both there first, as an earlier
generation and an upload would have. ``local/canvas`` edits for real: the pixels the mask keeps
come back bit for bit, which shows the job read the right inputs.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pytest
from aws_harness import REGION, JobsAws, decoded
from lambda_harness import FakeLambdaContext, load_event
from PIL import Image
from test_event_invocations import read_job

import imagegw.entrypoints.worker
from imagegw.storage.uploads import owner_tag, upload_token

from support.edit_images import alpha_mask, gradient

pytest_plugins = ["lambda_fixtures", "aws_fixtures"]

Handler = Callable[[Any, Any], Any]
SAMPLE = load_event("invoke-edit")["request"]
BUCKET, _, IMAGE_OBJECT = SAMPLE["images"][0]["image_url"].removeprefix("s3://").partition("/")
MASK_TOKEN = upload_token(SAMPLE["mask"]["file_id"])
SOURCE = gradient(64, 48)
MASK = alpha_mask(64, 48, change=(0, 0, 32, 48))  # the left half changes
KEPT = (32, 0, 64, 48)
OWNER = "env-key-1"  # the samples' client: the development key


@pytest.fixture
def bucket(jobs_aws: JobsAws, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The samples' bucket (in moto) holding the image and the key's upload they name."""
    monkeypatch.setenv("IMAGEGW_STORAGE", "s3")
    monkeypatch.setenv("IMAGEGW_S3_BUCKET", BUCKET)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=IMAGE_OBJECT, Body=SOURCE, ContentType="image/png")
    s3.put_object(
        Bucket=BUCKET,
        Key=f"uploads/{MASK_TOKEN}",
        Body=MASK,
        Metadata={"owner": owner_tag(OWNER)},
    )
    return s3


def uploads(s3: Any) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="uploads/").get("Contents", [])
    return sorted(entry["Key"] for entry in listed)


def edited_image(s3: Any, url: str) -> Image.Image:
    """The result behind a presigned link, read from the bucket."""
    parts = urlsplit(url)
    assert (parts.hostname or "").startswith(BUCKET)
    body = s3.get_object(Bucket=BUCKET, Key=unquote(parts.path).lstrip("/"))["Body"].read()
    return Image.open(io.BytesIO(body))


def assert_edited(s3: Any, result: dict[str, Any]) -> None:
    assert result["model"] == "local/canvas"
    assert result["size"] == "64x48"  # the input's
    (item,) = result["data"]
    edited = edited_image(s3, item["url"]).convert("RGB")
    original = Image.open(io.BytesIO(SOURCE)).convert("RGB")
    assert edited.crop(KEPT).tobytes() == original.crop(KEPT).tobytes()
    assert edited.crop((0, 0, 32, 48)).tobytes() != original.crop((0, 0, 32, 48)).tobytes()


def assert_recorded_as_an_edit(jobs: JobsAws, job_id: str, s3: Any) -> None:
    item = jobs.item(job_id)
    assert item is not None
    assert item["kind"] == {"S": "edit"}
    assert item["client"] == {"S": OWNER}
    # The job holds the edit with its inputs kept as uploads of the key, and what was sent.
    request = json.loads(item["request"]["S"])
    assert "s3://" not in item["request"]["S"]
    kept = [*request["images"], request["mask"]]
    assert all(set(reference) == {"file_id"} for reference in kept)
    assert {f"uploads/{upload_token(r['file_id'])}" for r in kept} <= set(uploads(s3))
    assert json.loads(item["submitted"]["S"]) == SAMPLE


# ------------------------------------------------------------------ every entry point, same edit


def test_a_direct_invocation_edits_and_answers_the_result(
    bucket: Any, jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    result = cold_handler(load_event("invoke-edit"), lambda_context)

    assert "error" not in result, result
    assert_edited(bucket, result)
    assert_recorded_as_an_edit(jobs_aws, f"invoke-{lambda_context.aws_request_id}", bucket)


def test_a_direct_invocation_with_a_job_id_is_queued_for_the_worker(
    bucket: Any, jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    event = {**load_event("invoke-edit"), "job_id": "edit-order-7"}

    queued = cold_handler(event, lambda_context)
    assert queued["status"] == "queued", queued
    assert jobs_aws.deliver(imagegw.entrypoints.worker.handler, lambda_context) == {
        "batchItemFailures": []
    }

    view = read_job(cold_handler, "edit-order-7", lambda_context)
    assert view["status"] == "succeeded", view
    assert_edited(bucket, view["result"])
    assert_recorded_as_an_edit(jobs_aws, "edit-order-7", bucket)


def test_an_eventbridge_edit_runs_once_however_often_the_event_comes(
    bucket: Any, jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("eventbridge-edit")
    job_id = event["detail"]["job_id"]

    queued = cold_handler(event, lambda_context)
    assert (queued["id"], queued["status"]) == (job_id, "queued")
    kept = uploads(bucket)
    # EventBridge retrying the event finds the job: nothing read or kept again, no second job.
    again = cold_handler(event, lambda_context)
    assert (again["id"], again["status"]) == (job_id, "queued")
    assert uploads(bucket) == kept
    assert len(jobs_aws.receive()) == 1
    assert jobs_aws.deliver(imagegw.entrypoints.worker.handler, lambda_context) == {
        "batchItemFailures": []
    }

    view = read_job(cold_handler, job_id, lambda_context)
    assert view["status"] == "succeeded", view
    assert_edited(bucket, view["result"])
    assert_recorded_as_an_edit(jobs_aws, job_id, bucket)
    assert cold_handler(event, lambda_context)["status"] == "succeeded"


def test_an_sqs_edit_message_is_run_by_the_worker(
    bucket: Any, jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("sqs-edit")
    (record,) = event["Records"]

    answer = imagegw.entrypoints.worker.handler(event, lambda_context)

    assert answer == {"batchItemFailures": []}
    job_id = f"sqs-{record['messageId']}"
    view = read_job(cold_handler, job_id, lambda_context)
    assert view["status"] == "succeeded", view
    assert_edited(bucket, view["result"])
    assert_recorded_as_an_edit(jobs_aws, job_id, bucket)


# ---------------------------------------------------------------- bad input: failed jobs, 4xx


def edit_event(**changes: Any) -> dict[str, Any]:
    """The EventBridge sample with its request changed."""
    event = load_event("eventbridge-edit")
    event["detail"]["request"] = {**copy.deepcopy(SAMPLE), **changes}
    return event


OTHER_BUCKET_OBJECT = {"image_url": f"s3://another-bucket/{IMAGE_OBJECT}"}


@pytest.mark.parametrize(
    ("changes", "code", "param"),
    [
        (
            {"images": [{"image_url": "data:image/png;base64,iVBORw0KGgo="}]},
            "image_url_not_allowed",
            "images[0].image_url",
        ),
        ({"images": [OTHER_BUCKET_OBJECT]}, "image_url_not_allowed", "images[0].image_url"),
        (
            # The bucket's other objects (uploads, idempotency records) are not images to read.
            {"images": [{"image_url": f"s3://{BUCKET}/uploads/{MASK_TOKEN}"}]},
            "image_url_not_allowed",
            "images[0].image_url",
        ),
        (
            # Only keys the gateway made (128 random bits) are images of its own.
            {"images": [{"image_url": f"s3://{BUCKET}/images/../uploads/{MASK_TOKEN}"}]},
            "image_url_not_allowed",
            "images[0].image_url",
        ),
        (
            {"images": [{"image_url": "http://169.254.169.254/latest/meta-data/iam"}]},
            "image_url_not_allowed",
            "images[0].image_url",
        ),
        ({"mask": {"file_id": "file-imagegw-" + "0" * 32}}, "file_not_found", "mask.file_id"),
        ({"images": []}, "missing_required_parameter", "images"),
        ({"model": "local/classic"}, "model_does_not_edit", "model"),
        ({"response_format": "b64_json"}, "invalid_value", "response_format"),
        ({"stream": True, "n": 2}, "unsupported_parameter", "input"),
    ],
)
def test_a_bad_edit_event_is_a_failed_job_with_the_http_error(
    bucket: Any,
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    changes: dict[str, Any],
    code: str,
    param: str,
) -> None:
    event = edit_event(**changes)

    view = cold_handler(event, lambda_context)

    assert view["status"] == "failed", view
    assert (view["error"]["code"], view["error"]["param"]) == (code, param)
    assert jobs_aws.receive() == []  # nothing queued
    item = jobs_aws.item(event["detail"]["job_id"])
    assert item is not None
    assert (item["status"], item["kind"]) == ({"S": "failed"}, {"S": "edit"})
    assert decoded(item["error"])["code"] == code
    assert read_job(cold_handler, event["detail"]["job_id"], lambda_context)["status"] == "failed"


def test_the_ssrf_guard_holds_for_event_edits_when_fetching_is_on(
    bucket: Any,
    jobs_aws: JobsAws,
    cold_handler: Handler,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAGEGW_EDIT_FETCH_HTTPS_URLS", "true")
    for url in ("https://169.254.169.254/latest/meta-data", "https://127.0.0.1/x.png"):
        event = edit_event(images=[{"image_url": url}])
        event["detail"]["job_id"] = f"ssrf-{len(url)}"
        view = cold_handler(event, lambda_context)
        assert view["status"] == "failed", view
        assert view["error"]["code"] == "image_url_not_allowed"


def test_a_file_id_belongs_to_the_key_the_event_names(
    bucket: Any, jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    # Without a client the invocation runs as aws:invoke, which made no upload.
    event = load_event("invoke-edit")
    del event["client"]

    result = cold_handler(event, lambda_context)

    assert result["error"]["code"] == "file_not_found"
    assert result["error"]["param"] == "mask.file_id"


def test_a_bad_sqs_edit_is_a_failed_job_and_the_message_is_done(
    bucket: Any, jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("sqs-edit")
    (record,) = event["Records"]
    body = json.loads(record["body"])
    body["request"]["images"] = [OTHER_BUCKET_OBJECT]
    record["body"] = json.dumps(body)

    assert imagegw.entrypoints.worker.handler(event, lambda_context) == {"batchItemFailures": []}
    view = read_job(cold_handler, f"sqs-{record['messageId']}", lambda_context)
    assert view["status"] == "failed"
    assert view["error"]["param"] == "images[0].image_url"


def test_a_job_id_reused_for_another_edit_is_a_conflict(
    bucket: Any, jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    event = {**load_event("invoke-edit"), "job_id": "edit-order-8"}
    assert cold_handler(event, lambda_context)["status"] == "queued"
    event["request"] = {**event["request"], "prompt": "something else"}

    assert cold_handler(event, lambda_context)["error"]["code"] == "job_id_conflict"


@pytest.mark.parametrize(
    ("event", "param"),
    [
        ({"action": "paint", "request": SAMPLE}, "action"),
        ({"action": "edit", "job_id": "x"}, "request"),
    ],
)
def test_an_event_that_is_no_edit_at_all_is_a_malformed_event(
    cold_handler: Handler, lambda_context: FakeLambdaContext, event: dict[str, Any], param: str
) -> None:
    result = cold_handler(event, lambda_context)

    assert result["error"]["code"] == "malformed_event"
    assert result["error"]["param"] == param


def test_a_bare_direct_invocation_may_be_an_edit(
    bucket: Any, jobs_aws: JobsAws, cold_handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    # The bare body (no "request" envelope) keeps its action.
    result = cold_handler({"action": "edit", **SAMPLE}, lambda_context)

    assert result["error"]["code"] == "file_not_found"  # ran as an edit, as aws:invoke
