"""Async jobs over HTTP as `make dev` runs them: `Prefer: respond-async`, in-process worker.

Outside Lambda and without a queue, a job runs as a background task of the server, so the test
polls the job like a client would.
"""

from __future__ import annotations

import time
from typing import Any

from api_support import GENERATIONS, assert_error, bearer, client_for
from fastapi.testclient import TestClient

from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from conftest import API_KEY, AUTH
from support.fakes import FakeClock, FakeProvider

ASYNC = {**AUTH, "Prefer": "respond-async"}
REQUEST = {"model": "gpt-image-1.5", "prompt": "a red bicycle", "n": 2}


def wait_for(client: TestClient, location: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(200):
        response = client.get(location, headers=headers)
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        if view["status"] in ("succeeded", "failed"):
            return view
        time.sleep(0.01)
    raise AssertionError("the job did not finish")


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

    done = wait_for(client, location, AUTH)
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
        wait_for(client, location, AUTH)
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
        done = wait_for(client, location, AUTH)
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
