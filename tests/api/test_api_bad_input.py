"""Every bad input of the issue gets its documented 4xx in the OpenAI envelope, before upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import GENERATIONS, assert_error, client_for
from fastapi.testclient import TestClient

from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from conftest import API_KEY, AUTH
from support.fakes import FakeClock, FakeProvider

GPT = "openai/gpt-image-1.5"


@pytest.mark.parametrize(
    ("body", "code", "param", "mentions"),
    [
        pytest.param(
            {"model": GPT, "prompt": "x", "n": 11},
            "invalid_value",
            "n",
            ["between 1 and 10"],
            id="n-above-openai-limit",
        ),
        pytest.param(
            {"model": "local/classic", "prompt": "x", "n": 2},
            "invalid_value",
            "n",
            ["1 image"],
            id="n-above-dall-e-3-like-limit",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "n": -1},
            "invalid_value",
            "n",
            ["between 1 and 10"],
            id="n-negative",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "size": "1280x720"},
            "invalid_value",
            "size",
            ["'1280x720'", "'auto'", "'1024x1024'", "'1536x1024'", "'1024x1536'"],
            id="size-not-taken",
        ),
        pytest.param(
            {"model": "local/canvas", "prompt": "x", "size": "1000x1000"},
            "invalid_value",
            "size",
            ["multiples of 16", "'1024x1024'"],
            id="free-size-outside-rule",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "quality": "hd"},
            "invalid_value",
            "quality",
            ["'hd'", "'auto'", "'low'", "'medium'", "'high'"],
            id="quality-not-taken",
        ),
        pytest.param(
            {"model": "local/classic", "prompt": "x", "style": "cartoon"},
            "invalid_value",
            "style",
            ["'cartoon'", "'vivid'", "'natural'"],
            id="style-not-taken",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "style": "vivid"},
            "unsupported_parameter",
            "style",
            [GPT, "'quality'"],
            id="style-not-accepted",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "background": "green"},
            "invalid_value",
            "background",
            ["'green'", "'transparent'", "'opaque'", "'auto'"],
            id="background-not-taken",
        ),
        pytest.param(
            {"model": "local/classic", "prompt": "x", "background": "transparent"},
            "unsupported_parameter",
            "background",
            ["local/classic"],
            id="background-not-accepted",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "output_format": "gif"},
            "invalid_value",
            "output_format",
            ["'png'", "'jpeg'", "'webp'"],
            id="output-format-not-taken",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "moderation": "strict"},
            "invalid_value",
            "moderation",
            ["'auto'", "'low'"],
            id="moderation-not-taken",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "background": "transparent", "output_format": "jpeg"},
            "invalid_value",
            "background",
            ["'jpeg'"],
            id="transparent-jpeg",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "output_format": "jpeg", "output_compression": 101},
            "invalid_value",
            "output_compression",
            ["between 0 and 100"],
            id="compression-out-of-range",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "response_format": "json"},
            "invalid_value",
            "response_format",
            ["'b64_json'", "'url'"],
            id="response-format",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "stream": True, "partial_images": 4},
            "invalid_value",
            "partial_images",
            ["between 0 and 3"],
            id="partial-images-out-of-range",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "partial_images": 2},
            "invalid_value",
            "partial_images",
            ["'stream': true"],
            id="partial-images-without-stream",
        ),
        pytest.param(
            {"model": GPT},
            "missing_required_parameter",
            "prompt",
            ["'prompt'"],
            id="prompt-missing",
        ),
        pytest.param(
            {"model": GPT, "prompt": None},
            "missing_required_parameter",
            "prompt",
            ["'prompt'"],
            id="prompt-null",
        ),
        pytest.param(
            {"model": GPT, "prompt": ""}, "invalid_value", "prompt", ["empty"], id="prompt-empty"
        ),
        pytest.param(
            {"model": GPT, "prompt": "  \n "},
            "invalid_value",
            "prompt",
            ["empty"],
            id="prompt-blank",
        ),
        pytest.param(
            {"model": "local/classic", "prompt": "p" * 4001},
            "string_above_max_length",
            "prompt",
            ["4000", "4001"],
            id="prompt-over-4000",
        ),
        pytest.param(
            {"model": GPT, "prompt": "p" * 32001},
            "string_above_max_length",
            "prompt",
            ["32000", "32001"],
            id="prompt-over-32000",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "steps": 3},
            "unknown_parameter",
            "steps",
            ["'steps'", "prompt", "size"],
            id="unknown-parameter",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "n": "2"},
            "invalid_type",
            "n",
            ["integer"],
            id="n-string",
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "n": 1.5},
            "invalid_type",
            "n",
            ["integer"],
            id="n-float",
        ),
        pytest.param(
            {"model": GPT, "prompt": 5}, "invalid_type", "prompt", ["string"], id="prompt-number"
        ),
        pytest.param(
            {"model": GPT, "prompt": "x", "stream": "yes"},
            "invalid_type",
            "stream",
            ["boolean"],
            id="stream-string",
        ),
        pytest.param(
            {"model": 3, "prompt": "x"}, "invalid_type", "model", ["string"], id="model-number"
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(
    client: TestClient,
    fake_provider: FakeProvider,
    body: dict[str, Any],
    code: str,
    param: str,
    mentions: list[str],
) -> None:
    response = client.post(GENERATIONS, json=body, headers=AUTH)
    message = assert_error(
        response, 400, code=code, param=param, error_type="invalid_request_error"
    )
    for fragment in mentions:
        assert fragment in message
    assert fake_provider.requests == []


@pytest.mark.parametrize(
    ("model", "limit"), [("local/classic", 4000), (GPT, 32000), ("local/sketch", 32000)]
)
def test_prompt_exactly_at_the_limit_is_served(
    client: TestClient, fake_provider: FakeProvider, model: str, limit: int
) -> None:
    response = client.post(
        GENERATIONS, json={"model": model, "prompt": "p" * limit, "size": "1024x1024"}, headers=AUTH
    )
    assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"model": "local/sketch", "prompt": ', id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"prompt=a+fox", id="form-text"),
        pytest.param(b'[{"prompt": "a fox"}]', id="array"),
        pytest.param(b'"a fox"', id="string"),
        pytest.param(b'{"prompt": "a \xff fox", "model": "local/sketch"}', id="invalid-utf8"),
        pytest.param(b"[" * 5000 + b"]" * 5000, id="deeply-nested"),
    ],
)
def test_body_that_is_not_a_json_object_is_a_400(
    client: TestClient, fake_provider: FakeProvider, content: bytes
) -> None:
    response = client.post(
        GENERATIONS, content=content, headers={**AUTH, "Content-Type": "application/json"}
    )
    message = assert_error(response, 400, code="invalid_json", error_type="invalid_request_error")
    assert "JSON" in message
    assert fake_provider.requests == []


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_wrong_content_type_is_a_415(client: TestClient, content_type: str | None) -> None:
    headers = dict(AUTH)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(
        GENERATIONS, content=b'{"model": "local/sketch", "prompt": "a fox"}', headers=headers
    )
    message = assert_error(response, 415, code="unsupported_media_type")
    assert "application/json" in message


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/vnd+json"]
)
def test_json_content_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post(
        GENERATIONS,
        content=b'{"model": "local/sketch", "prompt": "a fox", "size": "256x256"}',
        headers={**AUTH, "Content-Type": content_type},
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def small_limit_client(
    tmp_path: Path, clock: FakeClock, fake_provider: FakeProvider
) -> Iterator[TestClient]:
    settings = Settings(
        api_keys=API_KEY, local_storage_dir=tmp_path / "images", max_body_bytes=1024
    )
    with client_for(Runtime(settings, providers={"openai": fake_provider}, clock=clock)) as client:
        yield client


def test_body_over_the_limit_is_a_413(
    small_limit_client: TestClient, fake_provider: FakeProvider
) -> None:
    response = small_limit_client.post(
        GENERATIONS, json={"model": GPT, "prompt": "p" * 2000}, headers=AUTH
    )
    message = assert_error(response, 413, code="payload_too_large")
    assert "1024" in message
    assert fake_provider.requests == []


def test_chunked_body_over_the_limit_is_a_413(
    small_limit_client: TestClient, fake_provider: FakeProvider
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "openai/gpt-image-1.5", "prompt": "'
        for _ in range(10):
            yield b"p" * 200
        yield b'"}'

    response = small_limit_client.post(
        GENERATIONS, content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert_error(response, 413, code="payload_too_large")
    assert fake_provider.requests == []


def test_body_under_the_limit_is_served(
    small_limit_client: TestClient, fake_provider: FakeProvider
) -> None:
    response = small_limit_client.post(
        GENERATIONS, json={"model": GPT, "prompt": "p" * 900}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert len(fake_provider.requests) == 1


def test_retired_model_is_a_404_naming_date_and_replacement(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    response = client.post(GENERATIONS, json={"model": "dall-e-3", "prompt": "x"}, headers=AUTH)
    message = assert_error(response, 404, code="model_retired", param="model")
    assert "2026-05-12" in message
    assert "openai/gpt-image-2.5-sunburst" in message
    assert fake_provider.requests == []


@pytest.mark.parametrize("model", ["nope", "openai/nope", "local/nope", "Local/Sketch"])
def test_unknown_model_is_a_404(client: TestClient, model: str) -> None:
    response = client.post(GENERATIONS, json={"model": model, "prompt": "x"}, headers=AUTH)
    message = assert_error(response, 404, code="model_not_found", param="model")
    assert model in message
    assert "/v1/models" in message


def test_provider_without_its_key_is_a_503_naming_the_setting(
    settings: Settings, clock: FakeClock
) -> None:
    assert settings.openai_api_key is None
    with client_for(Runtime(settings, clock=clock)) as client:
        response = client.post(GENERATIONS, json={"model": GPT, "prompt": "x"}, headers=AUTH)
    message = assert_error(response, 503, code="provider_not_configured")
    assert "OPENAI_API_KEY" in message


def test_invalid_request_is_refused_before_the_provider_configuration_matters(
    settings: Settings, clock: FakeClock
) -> None:
    with client_for(Runtime(settings, clock=clock)) as client:
        response = client.post(
            GENERATIONS, json={"model": GPT, "prompt": "x", "n": 11}, headers=AUTH
        )
    assert_error(response, 400, code="invalid_value", param="n")


def test_model_missing_without_a_default_is_a_400(
    client: TestClient, fake_provider: FakeProvider
) -> None:
    response = client.post(GENERATIONS, json={"prompt": "x"}, headers=AUTH)
    message = assert_error(response, 400, code="missing_required_parameter", param="model")
    assert "/v1/models" in message
    assert fake_provider.requests == []


def test_model_missing_uses_the_configured_default(tmp_path: Path, clock: FakeClock) -> None:
    settings = Settings(
        api_keys=API_KEY, local_storage_dir=tmp_path / "images", default_model="local/sketch"
    )
    with client_for(Runtime(settings, clock=clock)) as client:
        response = client.post(
            GENERATIONS, json={"prompt": "x", "size": "256x256", "model": None}, headers=AUTH
        )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "local/sketch"
    assert response.headers["x-imagegw-model"] == "local/sketch"
