"""Successful generations through the API with the fake provider: shape, forwarding, reporting."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import GENERATIONS, client_for
from fastapi.testclient import TestClient

from imagegw.catalog import parse_catalog
from imagegw.entrypoints.runtime import Runtime
from imagegw.providers.base import GeneratedImage, ImageRequest, ImageResult
from imagegw.settings import Settings

from conftest import AUTH
from support.fakes import NOW, TINY_PNG, FakeClock, FakeProvider


def test_generation_answers_in_openai_shape(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    response = client.post(
        GENERATIONS,
        json={"model": "openai/gpt-image-1.5", "prompt": "a lighthouse", "n": 2},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-imagegw-model"] == "openai/gpt-image-1.5"
    body = response.json()
    assert body["created"] == int(NOW)
    assert [base64.b64decode(item["b64_json"]) for item in body["data"]] == [TINY_PNG, TINY_PNG]
    assert all(set(item) == {"b64_json"} for item in body["data"])
    assert body["usage"] == {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}
    assert (body["size"], body["quality"], body["background"], body["output_format"]) == (
        "1024x1024",
        "high",
        "opaque",
        "png",
    )
    assert body["model"] == "openai/gpt-image-1.5"
    assert "ignored_parameters" not in body
    assert "x-imagegw-ignored-params" not in response.headers

    (request,) = fake_provider.requests
    assert request.upstream_model == "gpt-image-1.5"
    assert request.prompt == "a lighthouse"
    assert request.n == 2


def test_every_accepted_parameter_reaches_the_provider(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    fields: dict[str, Any] = {
        "size": "1536x1024",
        "quality": "low",
        "background": "transparent",
        "output_format": "webp",
        "output_compression": 40,
        "moderation": "low",
        "user": "u-9",
        "safety_identifier": "s-9",
    }
    response = client.post(
        GENERATIONS,
        json={"model": "gpt-image-1.5", "prompt": "a fox", "n": None, "style": None, **fields},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    (request,) = fake_provider.requests
    for name, value in fields.items():
        assert getattr(request, name) == value, name
    assert request.n == 1
    assert request.style is None


def test_snapshot_is_sent_upstream_pinned(client: TestClient, fake_provider: FakeProvider) -> None:
    response = client.post(
        GENERATIONS,
        json={"model": "gpt-image-2-2026-04-21", "prompt": "a fox", "size": "1280x720"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "openai/gpt-image-2"
    (request,) = fake_provider.requests
    assert request.upstream_model == "gpt-image-2-2026-04-21"
    assert request.size == "1280x720"


def test_revised_prompt_and_filtered_images_are_reported(
    settings: Settings, clock: FakeClock
) -> None:
    def one_of_three(request: ImageRequest) -> ImageResult:
        return ImageResult(
            images=[
                GeneratedImage(media_type="image/png", data=TINY_PNG, revised_prompt="a red fox")
            ],
            filtered=request.n - 1,
        )

    provider = FakeProvider(result=one_of_three)
    with client_for(Runtime(settings, providers={"openai": provider}, clock=clock)) as client:
        response = client.post(
            GENERATIONS, json={"model": "gpt-image-1.5", "prompt": "a fox", "n": 3}, headers=AUTH
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] == [
        {"b64_json": base64.b64encode(TINY_PNG).decode(), "revised_prompt": "a red fox"}
    ]
    assert body["images_filtered"] == 2
    assert response.headers["x-imagegw-images-filtered"] == "2"
    # Resolved settings the provider did not report are left out, not invented.
    assert "usage" not in body
    assert "size" not in body


def test_url_delivery_of_provider_images(client: TestClient, clock: FakeClock) -> None:
    response = client.post(
        GENERATIONS,
        json={"model": "gpt-image-1.5", "prompt": "a fox", "n": 2, "response_format": "url"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    items = response.json()["data"]
    assert len(items) == 2
    assert items[0]["url"] != items[1]["url"]
    for item in items:
        assert item["expires_at"] == int(clock.now) + 3600
        assert "b64_json" not in item
        image = client.get(item["url"])
        assert image.status_code == 200
        assert image.content == TINY_PNG
        assert image.headers["content-type"] == "image/png"


# ---------------------------------------------------------------- ignored parameters


GOOGLE_LIKE = {
    "models": [
        {
            "id": "google/imagen-test",
            "provider": "google",
            "upstream_model": "imagen-test-001",
            "n_max": 4,
            "sizes": ["1024x1024", "1792x1024"],
            "default_size": "1024x1024",
            "parameters": ["size", "quality", "style", "user"],
            "ignored_parameters": ["quality", "style", "user"],
        }
    ]
}


@pytest.fixture
def google_provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def google_client(
    settings: Settings, clock: FakeClock, google_provider: FakeProvider
) -> Iterator[TestClient]:
    runtime = Runtime(
        settings,
        catalog=parse_catalog(GOOGLE_LIKE),
        providers={"google": google_provider},
        clock=clock,
    )
    with client_for(runtime) as client:
        yield client


def test_quality_and_style_are_ignored_for_google_and_reported(
    google_client: TestClient, google_provider: FakeProvider
) -> None:
    response = google_client.post(
        GENERATIONS,
        json={
            "model": "google/imagen-test",
            "prompt": "a fox",
            "quality": "hd",
            "style": "vivid",
            "size": "1792x1024",
        },
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-imagegw-ignored-params"] == "quality, style"
    assert response.json()["ignored_parameters"] == ["quality", "style"]
    (request,) = google_provider.requests
    assert request.quality is None
    assert request.style is None
    assert request.size == "1792x1024"
    assert request.upstream_model == "imagen-test-001"


def test_google_request_without_ignorable_parameters_reports_nothing(
    google_client: TestClient,
) -> None:
    response = google_client.post(
        GENERATIONS, json={"model": "google/imagen-test", "prompt": "a fox"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert "x-imagegw-ignored-params" not in response.headers
    assert "ignored_parameters" not in response.json()


def test_google_n_limit_is_four(google_client: TestClient, google_provider: FakeProvider) -> None:
    response = google_client.post(
        GENERATIONS, json={"model": "google/imagen-test", "prompt": "a fox", "n": 5}, headers=AUTH
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n"
    assert "between 1 and 4" in response.json()["error"]["message"]
    assert google_provider.requests == []


# ---------------------------------------------------------------- catalog redirects


def test_redirected_model_serves_the_replacement_and_says_so(
    settings: Settings, clock: FakeClock, fake_provider: FakeProvider
) -> None:
    catalog = parse_catalog(
        {
            "models": [
                {
                    "id": "openai/old-image",
                    "provider": "openai",
                    "upstream_model": "old-image",
                    "sizes": ["1024x1024"],
                    "parameters": ["size"],
                    "shutdown_date": dt.date(2026, 1, 1),
                    "replacement": "openai/new-image",
                    "redirect": True,
                },
                {
                    "id": "openai/new-image",
                    "provider": "openai",
                    "upstream_model": "new-image",
                    "sizes": ["1024x1024"],
                    "parameters": ["size"],
                },
            ]
        }
    )
    runtime = Runtime(settings, catalog=catalog, providers={"openai": fake_provider}, clock=clock)
    with client_for(runtime) as client:
        response = client.post(
            GENERATIONS, json={"model": "old-image", "prompt": "a fox"}, headers=AUTH
        )
        listed = client.get("/v1/models/openai/old-image", headers=AUTH).json()
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "openai/new-image"
    assert response.json()["redirected_from"] == "openai/old-image"
    assert response.headers["x-imagegw-redirected-from"] == "openai/old-image"
    assert fake_provider.requests[0].upstream_model == "new-image"
    assert listed["status"] == "redirected"
