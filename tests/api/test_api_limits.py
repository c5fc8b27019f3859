"""Per-key rate and quota over HTTP, counted in images and settled on what was delivered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import GENERATIONS, assert_error, bearer, client_for, write_key_file
from fastapi.testclient import TestClient

from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import UpstreamTimeout
from imagegw.providers.base import GeneratedImage, ImageRequest, ImageResult
from imagegw.settings import Settings
from imagegw.state.auth import FileKeyStore

from support.fakes import TINY_PNG, FakeClock, FakeProvider
from support.jobs import drain_jobs

RATED = "sk-rated-00000000000000000000"
QUOTA = "sk-quota-11111111111111111111"
FREE = "sk-free-222222222222222222222"
REQUEST = {"model": "openai/gpt-image-1.5", "prompt": "a lighthouse"}


class Provider(FakeProvider):
    """Delivers ``delivered`` images whatever n was (None: all), or raises ``error`` once."""

    def __init__(self) -> None:
        super().__init__(result=self._answer)
        self.delivered: int | None = None
        self.fail_next = False

    def _answer(self, request: ImageRequest) -> ImageResult:
        count = request.n if self.delivered is None else self.delivered
        images = [GeneratedImage(media_type="image/png", data=TINY_PNG) for _ in range(count)]
        return ImageResult(images=images, filtered=request.n - count)

    async def generate(self, request: ImageRequest) -> ImageResult:
        if self.fail_next:
            self.fail_next = False
            self.requests.append(request)
            raise UpstreamTimeout("The upstream provider did not answer in time.")
        return await super().generate(request)


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
def limited(
    settings: Settings, clock: FakeClock, provider: Provider, tmp_path: Path
) -> Iterator[TestClient]:
    keys = write_key_file(
        tmp_path / "keys.json",
        [
            {"name": "rated", "key": RATED, "scopes": ["*"], "rate": 4},
            {"name": "quota", "key": QUOTA, "scopes": ["*"], "quota": 5},
            {"name": "free", "key": FREE, "scopes": ["*"]},
        ],
    )
    clock.now += 20  # 40 s left in the minute
    runtime = Runtime(
        settings, key_store=FileKeyStore(keys), providers={"openai": provider}, clock=clock
    )
    with client_for(runtime) as client:
        yield client


def generate(client: TestClient, key: str, n: int) -> int:
    return client.post(GENERATIONS, json={**REQUEST, "n": n}, headers=bearer(key)).status_code


def test_over_the_rate_is_a_429_with_retry_after(limited: TestClient, provider: Provider) -> None:
    assert generate(limited, RATED, 3) == 200
    response = limited.post(GENERATIONS, json={**REQUEST, "n": 2}, headers=bearer(RATED))
    message = assert_error(
        response, 429, code="rate_limit_exceeded", error_type="rate_limit_error", retry=True
    )
    assert response.headers["retry-after"] == "40"
    assert "4 images per minute" in message
    assert len(provider.requests) == 1  # refused before the upstream
    ok = limited.post(GENERATIONS, json={**REQUEST, "n": 1}, headers=bearer(RATED))
    assert ok.status_code == 200


def test_the_rate_renews_with_the_minute(limited: TestClient, clock: FakeClock) -> None:
    assert generate(limited, RATED, 4) == 200
    clock.now += 40
    assert generate(limited, RATED, 4) == 200


def test_over_the_quota_is_insufficient_quota(limited: TestClient) -> None:
    assert generate(limited, QUOTA, 4) == 200
    response = limited.post(GENERATIONS, json={**REQUEST, "n": 2}, headers=bearer(QUOTA))
    message = assert_error(
        response, 429, code="insufficient_quota", error_type="insufficient_quota", retry=False
    )
    assert "5 images per day" in message


def test_images_not_delivered_are_given_back(limited: TestClient, provider: Provider) -> None:
    provider.delivered = 1
    response = limited.post(GENERATIONS, json={**REQUEST, "n": 4}, headers=bearer(RATED))
    assert response.status_code == 200
    assert response.json()["images_filtered"] == 3
    provider.delivered = None
    # Only the one delivered image counted: three more fit this minute.
    assert generate(limited, RATED, 3) == 200


def test_a_failed_generation_costs_the_key_nothing(limited: TestClient, provider: Provider) -> None:
    provider.fail_next = True
    failed = limited.post(GENERATIONS, json={**REQUEST, "n": 4}, headers=bearer(RATED))
    assert_error(failed, 504, code="upstream_timeout")
    assert generate(limited, RATED, 4) == 200


def test_asking_more_than_the_key_may_ever_have_is_a_400(limited: TestClient) -> None:
    response = limited.post(GENERATIONS, json={**REQUEST, "n": 6}, headers=bearer(QUOTA))
    assert_error(response, 400, code="invalid_value", param="n")


def test_an_idempotent_replay_costs_nothing(limited: TestClient, provider: Provider) -> None:
    headers = {**bearer(RATED), "Idempotency-Key": "job-1"}
    for _ in range(3):
        response = limited.post(GENERATIONS, json={**REQUEST, "n": 4}, headers=headers)
        assert response.status_code == 200
    assert len(provider.requests) == 1


def test_keys_without_limits_are_not_limited(limited: TestClient) -> None:
    for _ in range(5):
        assert generate(limited, FREE, 10) == 200


def test_one_key_at_its_limit_does_not_starve_another(limited: TestClient) -> None:
    assert generate(limited, RATED, 4) == 200
    assert generate(limited, RATED, 1) == 429
    assert generate(limited, QUOTA, 4) == 200


# ---------------------------------------------------------------- async jobs


def submit(client: TestClient, key: str, n: int) -> httpx.Response:
    headers = {**bearer(key), "Prefer": "respond-async"}
    body = {**REQUEST, "n": n, "response_format": "url"}
    return client.post(GENERATIONS, json=body, headers=headers)


def finished(client: TestClient, response: httpx.Response, key: str) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    drain_jobs(client)
    view: dict[str, Any] = client.get(response.headers["location"], headers=bearer(key)).json()
    assert view["status"] in ("succeeded", "failed"), view
    return view


def test_async_jobs_count_against_the_quota_like_synchronous_calls(limited: TestClient) -> None:
    # Without this, a key at its quota could keep generating through Prefer: respond-async.
    assert finished(limited, submit(limited, QUOTA, 4), QUOTA)["status"] == "succeeded"
    refused = submit(limited, QUOTA, 2)
    assert_error(refused, 429, code="insufficient_quota", error_type="insufficient_quota")
    assert generate(limited, QUOTA, 1) == 200


def test_a_job_that_delivers_fewer_images_gives_the_rest_back(
    limited: TestClient, provider: Provider
) -> None:
    provider.delivered = 1
    assert finished(limited, submit(limited, QUOTA, 4), QUOTA)["status"] == "succeeded"
    provider.delivered = None
    # One image used of five: four more fit today.
    assert generate(limited, QUOTA, 4) == 200
