"""Async jobs over HTTP as `make dev` runs them: `Prefer: respond-async`, in-process worker.

Outside Lambda and without a queue, a job runs as a background task of the server, so the test
polls the job like a client would.
"""

from __future__ import annotations

from api_support import GENERATIONS, assert_error, bearer, client_for
from fastapi.testclient import TestClient

from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from conftest import API_KEY, AUTH
from support.fakes import FakeClock, FakeProvider
from support.jobs import finished_job

ASYNC = {**AUTH, "Prefer": "respond-async"}
REQUEST = {"model": "gpt-image-1.5", "prompt": "a red bicycle", "n": 2}


def test_respond_async_answers_202_and_the_job_succeeds_with_links(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    response = client.post(GENERATIONS, json=REQUEST, headers=ASYNC)
    assert response.status_code == 202, response.text
    assert response.headers["preference-applied"] == "respond-async"
    submitted = response.json()
    assert submitted["object"] == "image.generation.job"
    assert submitted["status"] == "queued"
    location = response.headers["location"]
    assert location.endswith(f"/v1/images/jobs/{submitted['id']}")

    done = finished_job(client, location, AUTH)
    assert done["status"] == "succeeded"
    assert len(fake_provider.requests) == 1
    data = done["result"]["data"]
    assert len(data) == 2
    for item in data:
        image = client.get(item["url"])
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
    assert done["result"]["model"] == "openai/gpt-image-1.5"


def test_a_job_is_visible_only_to_the_key_that_submitted_it(
    settings: Settings, clock: FakeClock, fake_provider: FakeProvider
) -> None:
    both = Settings(
        api_keys=f"{API_KEY},sk-someone-else",
        local_storage_dir=settings.local_storage_dir,
        url_signing_secret="test-signing-secret",
    )
    runtime = Runtime(both, providers={"openai": fake_provider}, clock=clock)
    with client_for(runtime) as client:
        location = client.post(GENERATIONS, json=REQUEST, headers=ASYNC).headers["location"]
        finished_job(client, location, AUTH)
        refused = client.get(location, headers=bearer("sk-someone-else"))
        assert_error(refused, 404, code="job_not_found", param="job_id")
        unknown = client.get("/v1/images/jobs/job_unknown", headers=AUTH)
        assert_error(unknown, 404, code="job_not_found", param="job_id")
        assert_error(client.get(location), 401, code="missing_api_key")


def test_a_failed_job_carries_the_openai_error(settings: Settings, clock: FakeClock) -> None:
    from imagegw.errors import UpstreamAuthFailed

    provider = FakeProvider(error=UpstreamAuthFailed("The upstream rejected our key."))
    with client_for(Runtime(settings, providers={"openai": provider}, clock=clock)) as client:
        location = client.post(GENERATIONS, json=REQUEST, headers=ASYNC).headers["location"]
        done = finished_job(client, location, AUTH)
    assert done["status"] == "failed"
    assert done["error"] == {
        "message": "The upstream rejected our key.",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_auth_failed",
    }
    assert "result" not in done


def test_bad_requests_are_refused_at_submission(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    bad = {**REQUEST, "size": "7x7"}
    assert_error(
        client.post(GENERATIONS, json=bad, headers=ASYNC), 400, code="invalid_value", param="size"
    )
    inline = {**REQUEST, "response_format": "b64_json"}
    assert_error(
        client.post(GENERATIONS, json=inline, headers=ASYNC),
        400,
        code="invalid_value",
        param="response_format",
    )
    assert fake_provider.requests == []


def test_without_the_preference_the_call_stays_synchronous(client: TestClient) -> None:
    response = client.post(GENERATIONS, json=REQUEST, headers={**AUTH, "Prefer": "return=minimal"})
    assert response.status_code == 200
    assert "preference-applied" not in response.headers
    assert len(response.json()["data"]) == 2


def test_an_idempotency_key_names_the_job_so_a_repeat_gets_the_same_job(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    headers = {**ASYNC, "Idempotency-Key": "batch-line-7"}
    first = client.post(GENERATIONS, json=REQUEST, headers=headers)
    assert first.status_code == 202, first.text
    done = finished_job(client, first.headers["location"], AUTH)
    assert done["status"] == "succeeded"

    again = client.post(GENERATIONS, json=REQUEST, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "succeeded"  # the job as it is now, not a new one
    assert len(fake_provider.requests) == 1  # generated once

    other_key = client.post(
        GENERATIONS, json=REQUEST, headers={**ASYNC, "Idempotency-Key": "batch-line-8"}
    )
    assert other_key.json()["id"] != first.json()["id"]


def test_an_idempotency_key_reused_for_another_job_body_is_a_422(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    headers = {**ASYNC, "Idempotency-Key": "batch-line-9"}
    assert client.post(GENERATIONS, json=REQUEST, headers=headers).status_code == 202
    other = {**REQUEST, "prompt": "a blue bicycle"}
    assert_error(
        client.post(GENERATIONS, json=other, headers=headers),
        422,
        code="idempotency_key_reused",
        param="Idempotency-Key",
    )
    assert_error(
        client.post(GENERATIONS, json=REQUEST, headers={**ASYNC, "Idempotency-Key": "k" * 256}),
        400,
        code="invalid_value",
        param="Idempotency-Key",
    )


def test_idempotency_keys_of_two_clients_name_different_jobs() -> None:
    from imagegw.state.jobs.model import idempotent_job_id, is_valid_job_id

    first = idempotent_job_id("team-a", "line-1")
    assert is_valid_job_id(first)
    assert first == idempotent_job_id("team-a", "line-1")
    assert first != idempotent_job_id("team-b", "line-1")
