"""Input that is valid JSON or a valid URL but no request can hold: a clear 4xx, never a 500.

Lone UTF-16 surrogates (``"\\ud800"`` is valid JSON, but not a Unicode character: encoding it as
UTF-8 raises), integer literals beyond Python's 4,300-digit conversion limit, NaN and Infinity,
and signed local links with absurd ``expires`` or a non-ASCII ``signature`` (issue 12).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import GENERATIONS, assert_error, client_for
from fastapi.testclient import TestClient
from starlette.requests import Request

from imagegw.api.routes.images import read_json_body
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import PayloadTooLarge
from imagegw.settings import Settings

from conftest import API_KEY, AUTH
from support.fakes import FakeClock, FakeProvider

GPT = "openai/gpt-image-1.5"
JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}


@pytest.fixture
def client(tmp_path: Path, fake_provider: FakeProvider) -> Iterator[TestClient]:
    settings = Settings(
        api_keys=API_KEY,
        local_storage_dir=tmp_path / "images",
        url_signing_secret="test-signing-secret",
    )
    runtime = Runtime(settings, providers={"openai": fake_provider}, clock=FakeClock())
    with client_for(runtime) as client:
        yield client


@pytest.fixture
def fake_provider() -> FakeProvider:
    return FakeProvider()


def post_raw(client: TestClient, body: str) -> httpx.Response:
    # The body is written by hand: json.dumps would escape what the test is about.
    return client.post(GENERATIONS, content=body.encode("ascii"), headers=JSON_HEADERS)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(f'{{"model": "{GPT}", "prompt": "a fox \\ud800"}}', "prompt", id="prompt"),
        pytest.param(f'{{"model": "{GPT}", "prompt": "\\udfff"}}', "prompt", id="low-surrogate"),
        pytest.param(f'{{"model": "{GPT}", "prompt": "x", "size": "\\ud800"}}', "size", id="size"),
        pytest.param('{"model": "\\ud800", "prompt": "x"}', "model", id="model"),
        pytest.param(
            f'{{"model": "{GPT}", "prompt": "x", "quality": "hi\\udbff"}}',
            "quality",
            id="quality",
        ),
        pytest.param(
            f'{{"model": "{GPT}", "prompt": "x", "user": "\\ud800\\ud800"}}', "user", id="user"
        ),
        pytest.param(
            f'{{"model": "{GPT}", "prompt": "x", "user": {{"\\ud800": 1}}}}',
            "user",
            id="nested-name",
        ),
        pytest.param(
            f'{{"model": "{GPT}", "prompt": "x", "\\ud800": 1}}', "\\ud800", id="parameter-name"
        ),
        pytest.param(
            f'{{"model": "{GPT}", "prompt": "x", "size\\ud800": "1024x1024"}}',
            "size\\ud800",
            id="parameter-name-suffix",
        ),
    ],
)
def test_a_lone_surrogate_anywhere_is_a_400_naming_its_parameter(
    client: TestClient, fake_provider: FakeProvider, body: str, param: str
) -> None:
    response = post_raw(client, body)
    message = assert_error(response, 400, code="invalid_unicode", param=param)
    assert "surrogate" in message
    assert fake_provider.requests == []


@pytest.mark.parametrize("name", ["n", "output_compression", "partial_images", "prompt", "model"])
def test_an_integer_beyond_the_conversion_limit_is_a_400_naming_its_parameter(
    client: TestClient, fake_provider: FakeProvider, name: str
) -> None:
    document = {"model": GPT, "prompt": "x", "output_format": "jpeg"}
    body = json.dumps(document)[:-1] + f', "{name}": {"9" * 5000}}}'
    response = post_raw(client, body)
    message = assert_error(response, 400, code="integer_above_max_value", param=name)
    assert "5000 digits" in message
    assert fake_provider.requests == []
    # An integer Python converts is still judged by validation (or the type check), as before.
    response = post_raw(client, body.replace("9" * 5000, "9" * 30))
    assert response.status_code == 400
    assert response.json()["error"]["code"] != "integer_above_max_value"


def test_a_negative_huge_integer_is_refused_the_same_way(client: TestClient) -> None:
    response = post_raw(
        client, '{{"model": "{}", "prompt": "x", "n": -{}}}'.format(GPT, "1" * 4400)
    )
    assert_error(response, 400, code="integer_above_max_value", param="n")


def test_an_integer_nested_in_a_field_is_checked_too(client: TestClient) -> None:
    response = post_raw(
        client, '{{"model": "{}", "prompt": "x", "user": [[{}]]}}'.format(GPT, "7" * 5000)
    )
    assert_error(response, 400, code="integer_above_max_value", param="user")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_nan_and_infinity_are_not_json_numbers(client: TestClient, literal: str) -> None:
    response = post_raw(client, f'{{"model": "{GPT}", "prompt": "x", "n": {literal}}}')
    assert_error(response, 400, code="invalid_json", param="n")


# ------------------------------------------------------------------------------ signed links


def a_link(client: TestClient) -> str:
    response = client.post(
        GENERATIONS,
        json={"model": GPT, "prompt": "a fox", "response_format": "url"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    url: str = response.json()["data"][0]["url"]
    return url.split("://", 1)[1].split("/", 1)[1]


@pytest.mark.parametrize(
    ("expires", "signature"),
    [
        pytest.param("9" * 5000, "0" * 64, id="expires-5000-digits"),
        pytest.param(None, "%C3%A9", id="signature-non-ascii"),
        pytest.param(None, "%F0%9F%A6%8A" * 16, id="signature-emoji"),
        pytest.param(None, "%ED%A0%80", id="signature-encoded-surrogate"),
    ],
)
def test_a_hostile_signed_link_is_refused_never_a_500(
    client: TestClient, expires: str | None, signature: str
) -> None:
    path, query = a_link(client).split("?", 1)
    real = dict(part.split("=", 1) for part in query.split("&"))
    response = client.get(f"/{path}?expires={expires or real['expires']}&signature={signature}")
    assert_error(response, 403, code="invalid_link")
    # ... and the genuine link still works.
    assert client.get(f"/{path}?{query}").status_code == 200


# ------------------------------------------------------------------------------ headers


def test_a_content_length_of_thousands_of_digits_is_a_413(client: TestClient) -> None:
    # Under Lambda the headers come from the event as they are; int() of them must not raise.
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    request = Request(
        {
            "type": "http",
            "method": "POST",
            "path": GENERATIONS,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"9" * 5000),
            ],
        },
        receive,
    )
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_json_body(request, 1024))


# ------------------------------------------------------------------------------ edits (JSON)


@pytest.mark.parametrize(
    ("member", "param", "code"),
    [
        pytest.param('"prompt": "add a hat \\ud800"', "prompt", "invalid_unicode", id="surrogate"),
        pytest.param('"n": ' + "9" * 5000, "n", "integer_above_max_value", id="huge-integer"),
        pytest.param('"n": NaN', "n", "invalid_json", id="nan"),
        pytest.param(
            '"images": [{"image_url": "data:image/png;base64,\\udfff"}]',
            "images",
            "invalid_unicode",
            id="surrogate-in-an-image-url",
        ),
    ],
)
def test_a_json_edit_with_a_hostile_value_is_a_400_naming_it(
    client: TestClient, member: str, param: str, code: str
) -> None:
    body = '{"model": "local/sketch", "prompt": "add a hat", ' + member + "}"
    body = body.replace('"prompt": "add a hat", "prompt"', '"prompt"')
    response = client.post("/v1/images/edits", content=body.encode("ascii"), headers=JSON_HEADERS)
    assert_error(response, 400, code=code, param=param)
