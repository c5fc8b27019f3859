"""Partial and empty provider results through the API: reported, and never a 200 without data."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from api_support import GENERATIONS, client_for

from imagegw.entrypoints.runtime import Runtime
from imagegw.providers.base import GeneratedImage, ImageRequest, ImageResult
from imagegw.settings import Settings

from conftest import AUTH
from support.fakes import TINY_PNG, FakeClock, FakeProvider


def _post(
    settings: Settings, clock: FakeClock, result: Callable[[ImageRequest], ImageResult]
) -> httpx.Response:
    provider = FakeProvider(result=result)
    with client_for(Runtime(settings, providers={"openai": provider}, clock=clock)) as client:
        return client.post(
            GENERATIONS, json={"model": "gpt-image-1.5", "prompt": "a fox", "n": 4}, headers=AUTH
        )


def test_failed_calls_of_a_fan_out_are_reported(settings: Settings, clock: FakeClock) -> None:
    response = _post(
        settings,
        clock,
        lambda request: ImageResult(
            images=[GeneratedImage(media_type="image/png", data=TINY_PNG)] * 2,
            filtered=1,
            failed=1,
        ),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["data"]) == 2
    assert (body["images_filtered"], body["images_failed"]) == (1, 1)
    assert response.headers["x-imagegw-images-filtered"] == "1"
    assert response.headers["x-imagegw-images-failed"] == "1"


@pytest.mark.parametrize(
    ("filtered", "status", "code"),
    [(4, 400, "content_policy_violation"), (0, 502, "upstream_bad_response")],
)
def test_a_result_without_images_is_never_a_200(
    settings: Settings, clock: FakeClock, filtered: int, status: int, code: str
) -> None:
    response = _post(settings, clock, lambda request: ImageResult(images=[], filtered=filtered))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
