"""The openai client -> the gateway under uvicorn -> the fake Google, for Imagen and Gemini.

Imagen 4 was shut down on 2026-08-17. Its contract is exercised as it was before that day, by a
gateway whose clock reads 2026-08-01; a gateway at today's date (2026-11-22) shows the retired
model error, and an operator's catalog with ``redirect = true`` serves the Gemini replacement.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from e2e.conftest import CLIENT_KEY
from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.edit_images import gradient
from support.fake_google import (
    GEMINI_3_SIZES,
    IMAGEN_SIZES,
    Content,
    Delay,
    FakeGoogle,
    GoogleError,
    Predictions,
    model_gone,
    permission_denied,
    rate_limited,
    server_error,
)
from support.fakes import FakeClock
from support.google_env import service_account_key
from support.servers import GatewayServer

IMAGEN = "google/imagen-4.0"
GEMINI = "google/gemini-3.1-flash-image"
BEFORE_IMAGEN_SHUTDOWN = dt.datetime(2026, 8, 1, 12, 0, tzinfo=dt.UTC).timestamp()

# size -> (aspectRatio, tier sent, size produced), written from Google's tables in the fake.
IMAGEN_EXPECTED: dict[str, tuple[str, str | None, str]] = {
    size: (ratio, None if tier == "1K" else tier, size)
    for (ratio, tier), size in IMAGEN_SIZES.items()
}
IMAGEN_EXPECTED.update(
    {"1792x1024": ("16:9", None, "1408x768"), "1024x1792": ("9:16", None, "768x1408")}
)
GEMINI_EXPECTED: dict[str, tuple[str, str | None, str]] = {
    size: (ratio, tier, size) for (ratio, tier), size in GEMINI_3_SIZES.items()
}
GEMINI_EXPECTED.update(
    {
        "1792x1024": ("16:9", "1K", "1376x768"),
        "1024x1792": ("9:16", "1K", "768x1376"),
        "1536x1024": ("3:2", "1K", "1264x848"),
        "1024x1536": ("2:3", "1K", "848x1264"),
    }
)

MakeGateway = Callable[..., GatewayServer]


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle(service_account_key()) as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture(autouse=True)
def _fresh_google(google: FakeGoogle) -> None:
    google.reset()
    google.predict_default = Predictions()
    google.content_default = Content()


@pytest.fixture(scope="module")
def make_gateway(
    google: FakeGoogle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeGateway]:
    directory = tmp_path_factory.mktemp("google-e2e")
    key_file = directory / "service-account.json"
    key_file.write_text(json.dumps(google.key.info(token_uri=google.token_uri)))

    with contextlib.ExitStack() as stack:

        def make(now: float = BEFORE_IMAGEN_SHUTDOWN, **overrides: Any) -> GatewayServer:
            values: dict[str, Any] = {
                "api_keys": CLIENT_KEY,
                "local_storage_dir": directory / "images",
                "url_signing_secret": "e2e-signing-secret",
                "google_service_account_file": key_file,
                "google_vertex_base_url": google.origin,
                "google_api_key": None,
                "openai_api_key": None,
            }
            values.update(overrides)
            runtime = Runtime(Settings(**values), clock=FakeClock(now))
            return stack.enter_context(GatewayServer(create_app(runtime=runtime)))

        yield make


@pytest.fixture(scope="module")
def gateway(make_gateway: MakeGateway) -> GatewayServer:
    return make_gateway()


@pytest.fixture
def oai(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30
    ) as client:
        yield client


def _client(gateway: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30
    )


def _size(b64: str | None) -> str:
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    return f"{image.size[0]}x{image.size[1]}"


# ------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("size", list(IMAGEN_EXPECTED))
def test_imagen_every_size(oai: openai.OpenAI, google: FakeGoogle, size: str) -> None:
    ratio, tier, produced = IMAGEN_EXPECTED[size]
    response = oai.images.generate(model=IMAGEN, prompt="a lighthouse", size=size)  # type: ignore[arg-type]
    (sent,) = google.calls("predict")
    assert sent.json["parameters"]["aspectRatio"] == ratio
    assert sent.json["parameters"].get("sampleImageSize") == tier
    assert _size(response.data[0].b64_json) == produced
    assert response.size == produced


@pytest.mark.parametrize("size", list(GEMINI_EXPECTED))
def test_gemini_every_size(oai: openai.OpenAI, google: FakeGoogle, size: str) -> None:
    ratio, tier, produced = GEMINI_EXPECTED[size]
    response = oai.images.generate(model=GEMINI, prompt="a lighthouse", size=size)  # type: ignore[arg-type]
    (sent,) = google.calls("generateContent")
    assert sent.json["generationConfig"]["imageConfig"] == {"aspectRatio": ratio, "imageSize": tier}
    assert _size(response.data[0].b64_json) == produced
    assert response.size == produced


def test_a_size_google_has_no_ratio_for_is_refused_with_the_list(
    oai: openai.OpenAI, google: FakeGoogle
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=IMAGEN, prompt="a lighthouse", size="1536x1024")
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "size"
    assert "'1408x768'" in error["message"]
    assert google.requests == []


# ------------------------------------------------------------------------------------- n


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_imagen_n_is_one_call_with_sample_count(
    oai: openai.OpenAI, google: FakeGoogle, n: int
) -> None:
    response = oai.images.generate(model=IMAGEN, prompt="a fox", n=n)
    (sent,) = google.calls("predict")
    assert sent.json["parameters"]["sampleCount"] == n
    assert len(response.data) == n


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_gemini_n_is_n_calls(oai: openai.OpenAI, google: FakeGoogle, n: int) -> None:
    response = oai.images.generate(model=GEMINI, prompt="a fox", n=n)
    assert len(google.calls("generateContent")) == n
    assert len(response.data) == n
    assert all(_size(item.b64_json) == "1024x1024" for item in response.data)


@pytest.mark.parametrize("model", [IMAGEN, GEMINI])
def test_n_5_is_refused(oai: openai.OpenAI, google: FakeGoogle, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=model, prompt="a fox", n=5)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "n"
    assert google.requests == []


# ------------------------------------------------------------------------------------- delivery


@pytest.mark.parametrize("model", [IMAGEN, GEMINI])
def test_url_delivery_serves_the_same_image(oai: openai.OpenAI, model: str) -> None:
    response = oai.images.generate(
        model=model, prompt="a tree", n=2, size="1024x1024", response_format="url"
    )
    assert len(response.data) == 2
    for item in response.data:
        assert item.b64_json is None
        assert item.url is not None
        fetched = httpx.get(item.url)
        assert fetched.status_code == 200
        assert fetched.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(fetched.content)).size == (1024, 1024)


def test_imagen_extra_parameters_and_jpeg(oai: openai.OpenAI, google: FakeGoogle) -> None:
    raw = oai.images.with_raw_response.generate(
        model=IMAGEN,
        prompt="a portrait of a lighthouse keeper",
        output_format="jpeg",
        quality="hd",
        style="vivid",
        extra_body={"watermark": False, "person_generation": "allow_adult"},
    )
    response = raw.parse()
    parameters = google.calls("predict")[0].json["parameters"]
    assert parameters["addWatermark"] is False
    assert parameters["personGeneration"] == "allow_adult"
    assert parameters["outputOptions"] == {"mimeType": "image/jpeg"}
    assert "quality" not in json.dumps(parameters)
    assert (
        Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json or ""))).format == "JPEG"
    )
    assert response.output_format == "jpeg"
    assert raw.headers["x-imagegw-ignored-params"] == "quality, style"


def test_gemini_refuses_imagen_only_parameters(oai: openai.OpenAI, google: FakeGoogle) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=GEMINI, prompt="a fox", extra_body={"watermark": False})
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "watermark"
    assert google.requests == []


# ------------------------------------------------------------------------------------- filtering


def test_imagen_partial_filtering_is_reported(oai: openai.OpenAI, google: FakeGoogle) -> None:
    google.enqueue("predict", Predictions(filtered=1))
    raw = oai.images.with_raw_response.generate(model=IMAGEN, prompt="a crowd", n=3)
    assert len(raw.parse().data) == 2
    assert raw.headers["x-imagegw-images-filtered"] == "1"
    assert json.loads(raw.content)["images_filtered"] == 1


def test_gemini_partial_filtering_is_reported(oai: openai.OpenAI, google: FakeGoogle) -> None:
    google.enqueue("content", Content(image=False, finish_reason="IMAGE_SAFETY"))
    raw = oai.images.with_raw_response.generate(model=GEMINI, prompt="a crowd", n=2)
    assert len(raw.parse().data) == 1
    assert raw.headers["x-imagegw-images-filtered"] == "1"
    assert json.loads(raw.content)["images_filtered"] == 1


@pytest.mark.parametrize(
    ("model", "kind", "reply"),
    [
        (IMAGEN, "predict", Predictions(filtered=2)),
        (GEMINI, "content", Content(block_reason="SAFETY")),
    ],
)
def test_total_filtering_is_a_content_policy_violation(
    oai: openai.OpenAI, google: FakeGoogle, model: str, kind: str, reply: Any
) -> None:
    if kind == "predict":
        google.predict_default = reply
    else:
        google.content_default = reply
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=model, prompt="a crowd", n=2)
    assert caught.value.code == "content_policy_violation"


# ------------------------------------------------------------------------------------- errors


def _errors() -> list[Any]:
    cases = [
        (rate_limited("7s"), openai.RateLimitError, 429, "rate_limit_exceeded"),
        (
            GoogleError(401, "UNAUTHENTICATED", "SECRET-UPSTREAM-DETAIL"),
            openai.InternalServerError,
            502,
            "upstream_auth_failed",
        ),
        (permission_denied(), openai.InternalServerError, 502, "upstream_auth_failed"),
        (model_gone(), openai.NotFoundError, 404, "model_unavailable"),
        (server_error(), openai.InternalServerError, 502, "upstream_error"),
    ]
    return [
        pytest.param(model, *case, id=f"{model.split('/')[1]}-{case[2]}-{case[3]}")
        for model in (IMAGEN, GEMINI)
        for case in cases
    ]


@pytest.mark.parametrize(("model", "reply", "error", "status", "code"), _errors())
def test_google_errors_reach_the_client_as_openai_errors(
    oai: openai.OpenAI,
    google: FakeGoogle,
    model: str,
    reply: GoogleError,
    error: type[openai.APIStatusError],
    status: int,
    code: str,
) -> None:
    google.predict_default = reply
    google.content_default = reply
    with pytest.raises(error) as caught:
        oai.images.generate(model=model, prompt="a fox")
    assert caught.value.status_code == status
    assert caught.value.code == code
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.response.text
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "7"
        assert caught.value.response.headers["x-should-retry"] == "true"


@pytest.mark.parametrize("model", [IMAGEN, GEMINI])
def test_a_slow_google_is_a_504(make_gateway: MakeGateway, google: FakeGoogle, model: str) -> None:
    google.predict_default = Delay(5, Predictions())
    google.content_default = Delay(5, Content())
    client = _client(make_gateway(upstream_timeout_seconds=1.0))
    with client, pytest.raises(openai.InternalServerError) as caught:
        client.images.generate(model=model, prompt="a fox")
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"


# ------------------------------------------------------------------------------------- lifecycle


def test_imagen_after_its_shutdown_is_the_retired_model_error(
    make_gateway: MakeGateway, google: FakeGoogle
) -> None:
    client = _client(make_gateway(now=FakeClock().now))
    with client, pytest.raises(openai.NotFoundError) as caught:
        client.images.generate(model=IMAGEN, prompt="a fox")
    assert caught.value.code == "model_retired"
    assert "2026-08-17" in caught.value.message
    assert GEMINI in caught.value.message
    assert google.requests == []


def test_an_operator_catalog_redirects_imagen_to_gemini(
    make_gateway: MakeGateway, google: FakeGoogle, tmp_path: Path
) -> None:
    packaged = (
        Path(__file__).parents[2] / "functions/gateway/imagegw/catalog/models.toml"
    ).read_text()
    block_start = packaged.index('id = "google/imagen-4.0"\n')
    block_end = packaged.index("[[models]]", block_start)
    block = packaged[block_start:block_end]
    assert "redirect = false" in block
    catalog = tmp_path / "models.toml"
    catalog.write_text(
        packaged[:block_start]
        + block.replace("redirect = false", "redirect = true")
        + packaged[block_end:]
    )
    gateway = make_gateway(now=FakeClock().now, catalog_file=catalog)
    with _client(gateway) as client:
        raw = client.images.with_raw_response.generate(
            model=IMAGEN, prompt="a fox", n=2, size="1792x1024"
        )
    response = raw.parse()
    assert raw.headers["x-imagegw-redirected-from"] == IMAGEN
    assert raw.headers["x-imagegw-model"] == GEMINI
    assert json.loads(raw.content)["redirected_from"] == IMAGEN
    assert len(response.data) == 2
    assert google.calls("predict") == []
    calls = google.calls("generateContent")
    assert len(calls) == 2
    assert calls[0].path.endswith("/models/gemini-3.1-flash-image:generateContent")
    assert response.size == "1376x768"


def test_gemini_through_the_gemini_api_with_only_a_key(
    make_gateway: MakeGateway, google: FakeGoogle
) -> None:
    gateway = make_gateway(
        google_service_account_file=None,
        google_vertex_base_url=None,
        google_api_key=google.api_key,
        google_gemini_base_url=google.origin,
    )
    with _client(gateway) as client:
        response = client.images.generate(
            model="google/gemini-2.5-flash-image", prompt="a fox", n=2, size="1536x1024"
        )
        with pytest.raises(openai.APIStatusError) as caught:
            client.images.generate(model=IMAGEN, prompt="a fox")
    assert [_size(item.b64_json) for item in response.data] == ["1248x832", "1248x832"]
    calls = google.calls("generateContent")
    assert {call.path for call in calls} == {
        "/v1beta/models/gemini-2.5-flash-image:generateContent"
    }
    assert google.token_requests == []
    assert caught.value.status_code == 503
    assert caught.value.code == "provider_not_configured"


# ------------------------------------------------------------------------------------ stream


def test_gemini_streams_the_completed_image_and_invents_no_partials(
    oai: openai.OpenAI, google: FakeGoogle
) -> None:
    events = list(
        oai.images.generate(
            model=GEMINI, prompt="a lighthouse", stream=True, partial_images=2, size="1024x1024"
        )
    )
    # Gemini makes no intermediate images: the stream is the completed event when it is ready.
    assert [event.type for event in events] == ["image_generation.completed"]
    completed = events[0]
    assert _size(completed.b64_json) == "1024x1024"
    assert completed.model == GEMINI  # type: ignore[attr-defined]
    assert len(google.calls("generateContent")) == 1


def test_a_gemini_edit_streams_the_completed_image_only(
    oai: openai.OpenAI, google: FakeGoogle
) -> None:
    source = gradient(64, 48)

    events = list(
        oai.images.edit(
            model=GEMINI, image=source, prompt="make it blue", stream=True, partial_images=2
        )
    )

    # As for generations: no upstream stream, no invented partials; the edit's event name.
    assert [event.type for event in events] == ["image_edit.completed"]
    assert events[0].model == GEMINI  # type: ignore[attr-defined]
    (sent,) = google.calls("generateContent")
    parts = sent.json["contents"][0]["parts"]
    assert parts[0]["inlineData"]["data"] == base64.b64encode(source).decode()
    assert parts[-1] == {"text": "make it blue"}
