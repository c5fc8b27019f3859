"""The Lambda response limit, on both sides of the boundary, at the real 6,291,556 bytes.

A buffered Lambda response over the limit becomes a bare 502 from API Gateway. The gateway
measures its answer first (``enforce_response_limit`` applies the check outside Lambda too):
a b64_json answer that fits is sent as it is; one byte more and it becomes links (saying so in
``x-imagegw-delivery``) or, when the operator forbids that, a 413 that tells the caller what to
do. The case is built to land exactly on the limit: a ~4.6 MB image, then a revised prompt
padded one ASCII character at a time (each adds exactly one byte).
"""

from __future__ import annotations

import base64
import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from api_support import GENERATIONS, assert_error, client_for
from fastapi.testclient import TestClient
from httpx import Response

from imagegw.entrypoints.runtime import Runtime
from imagegw.generation.response_size import LAMBDA_RESPONSE_LIMIT, lambda_response_size
from imagegw.providers.base import GeneratedImage, ImageRequest, ImageResult
from imagegw.settings import Settings

from conftest import API_KEY, AUTH
from support.fakes import FakeClock, FakeProvider
from support.leaks import LeakWatch

# ~6.1 MB as base64: just under the limit. Seeded test data, not a secret.
IMAGE = random.Random(7).randbytes(4_600_000)  # noqa: S311
REQUEST = {"model": "openai/gpt-image-2", "prompt": "a very detailed city", "n": 1}


def provider(revised_prompt: str) -> FakeProvider:
    def result(request: ImageRequest) -> ImageResult:
        image = GeneratedImage(media_type="image/png", data=IMAGE, revised_prompt=revised_prompt)
        return ImageResult(images=[image], output_format="png")

    return FakeProvider(result=result)


def ask(revised_prompt: str, settings: Settings, **request: Any) -> Response:
    runtime = Runtime(settings, providers={"openai": provider(revised_prompt)}, clock=FakeClock())
    with client_for(runtime) as client:
        response: Response = client.post(GENERATIONS, json={**REQUEST, **request}, headers=AUTH)
        if response.status_code == 200 and "url" in response.json()["data"][0]:
            fetched_images(client, response)
        return response


def fetched_images(client: TestClient, response: Response) -> None:
    for item in response.json()["data"]:
        image = client.get(item["url"])
        assert image.status_code == 200
        assert image.content == IMAGE


def measured(response: Response) -> int:
    """The size the gateway computes for this answer (its body and its x-imagegw-* headers)."""
    headers = {k: v for k, v in response.headers.items() if k.startswith("x-imagegw-")}
    return lambda_response_size(response.content, headers)


@pytest.fixture(scope="module")
def padding() -> int:
    """How many characters of revised prompt put the answer exactly on the limit."""
    unlimited = Settings(api_keys=API_KEY, url_signing_secret="s")
    trial = ask("", unlimited)
    assert trial.status_code == 200
    extra = LAMBDA_RESPONSE_LIMIT - measured(trial)
    assert 0 < extra < 500_000  # the image leaves room for the padding, and not too much
    return extra


def limited(tmp_path: Any, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_keys": API_KEY,
        "enforce_response_limit": True,
        "local_storage_dir": tmp_path / "images",
        "url_signing_secret": "s",
    }
    values.update(overrides)
    return Settings(**values)


def test_the_default_limit_is_the_lambda_limit() -> None:
    assert Settings().max_response_bytes == LAMBDA_RESPONSE_LIMIT == 6_291_556


def test_an_answer_exactly_at_the_limit_is_sent_inline(padding: int, tmp_path: Any) -> None:
    response = ask("x" * padding, limited(tmp_path))
    assert response.status_code == 200, response.text[:300]
    assert measured(response) == LAMBDA_RESPONSE_LIMIT
    assert "x-imagegw-delivery" not in response.headers
    (item,) = response.json()["data"]
    assert base64.b64decode(item["b64_json"]) == IMAGE


def test_one_byte_over_switches_to_links_and_says_so(
    padding: int, tmp_path: Any, leak_watch: LeakWatch
) -> None:
    leak_watch.image(IMAGE)
    response = ask("x" * (padding + 1), limited(tmp_path, log_level="DEBUG"))
    assert response.status_code == 200, response.text[:300]
    assert response.headers["x-imagegw-delivery"] == "url; reason=response_too_large"
    (item,) = response.json()["data"]
    assert set(item) == {"url", "expires_at", "revised_prompt"}
    assert len(response.content) < 200_000
    leak_watch.secret(parse_qs(urlsplit(item["url"]).query)["signature"][0], what="link signature")


def test_one_byte_over_is_a_413_when_links_are_not_allowed(padding: int, tmp_path: Any) -> None:
    response = ask("x" * (padding + 1), limited(tmp_path, oversize_to_url=False))
    message = assert_error(response, 413, code="response_too_large", param="response_format")
    assert "response_format=url" in message
    assert "smaller n" in message
    assert f"{LAMBDA_RESPONSE_LIMIT + 1} bytes" in message
    assert f"over the {LAMBDA_RESPONSE_LIMIT}-byte response limit" in message


def test_exactly_at_the_limit_is_not_refused_when_links_are_not_allowed(
    padding: int, tmp_path: Any
) -> None:
    response = ask("x" * padding, limited(tmp_path, oversize_to_url=False))
    assert response.status_code == 200, response.text[:300]


def test_outside_lambda_the_limit_applies_only_when_enforced(padding: int, tmp_path: Any) -> None:
    """uvicorn (no Lambda event in the request) has no response limit of its own."""
    settings = limited(tmp_path, enforce_response_limit=False, oversize_to_url=False)
    response = ask("x" * (padding + 1), settings)
    assert response.status_code == 200, response.text[:300]
    assert "b64_json" in response.json()["data"][0]


def test_a_url_request_is_never_measured_against_the_inline_size(
    padding: int, tmp_path: Any
) -> None:
    response = ask("x" * (padding + 1), limited(tmp_path), response_format="url")
    assert response.status_code == 200, response.text[:300]
    assert "x-imagegw-delivery" not in response.headers
    assert "url" in response.json()["data"][0]
