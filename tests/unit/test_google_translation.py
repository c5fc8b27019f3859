"""Pure Google translation: size tables vs the catalog, answers, errors, image headers."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image

from imagegw.catalog import Catalog, load_catalog
from imagegw.errors import (
    ContentPolicyViolation,
    InvalidRequest,
    RateLimited,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
)
from imagegw.providers.base import ImageRequest
from imagegw.providers.dimensions import dimensions
from imagegw.providers.google import gemini, imagen, sizes
from imagegw.providers.google.errors import translate_error
from imagegw.providers.google.output import rewritten_prompt


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _request(catalog: Catalog, model_id: str, **fields: Any) -> ImageRequest:
    spec = catalog.get(model_id)
    assert spec is not None
    values: dict[str, Any] = {"prompt": "a lighthouse at dusk", "n": 1, **fields}
    return ImageRequest(spec=spec, upstream_model=spec.upstream_model, timeout_seconds=5, **values)


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _jpeg(width: int, height: int, *, exif: bool = False) -> str:
    buffer = io.BytesIO()
    image = Image.new("RGB", (width, height), (1, 2, 3))
    options: dict[str, Any] = {}
    if exif:
        data = Image.Exif()
        data[0x010E] = "x" * 5000  # a large metadata segment before the frame header
        options["exif"] = data
    image.save(buffer, "JPEG", **options)
    return base64.b64encode(buffer.getvalue()).decode()


# ------------------------------------------------------------------------------------- sizes


def test_every_google_model_names_an_api_and_its_sizes_are_its_tables(catalog: Catalog) -> None:
    google = [spec for spec in catalog if spec.provider == "google"]
    assert {spec.id for spec in google} >= {
        "google/imagen-4.0",
        "google/imagen-4.0-ultra",
        "google/imagen-4.0-fast",
        "google/imagen-3.0",
        "google/gemini-2.5-flash-image",
        "google/gemini-3.1-flash-image",
        "google/gemini-3-pro-image",
    }
    for spec in google:
        assert spec.upstream_option("api") in ("predict", "generateContent"), spec.id
        table = sizes.SIZE_TABLES[spec.upstream_option("size_table") or ""]
        assert sorted(spec.sizes) == sorted(table), spec.id
        assert spec.default_size in table
        assert {"quality", "style"} <= spec.ignored_parameters
        assert spec.n_max == 4


def test_imagen_models_retire_and_name_a_served_gemini_replacement(catalog: Catalog) -> None:
    for spec in catalog:
        if spec.upstream_option("api") == "predict":
            assert spec.shutdown_date is not None
            assert spec.redirect is False  # the retired-model error unless the operator opts in
            replacement = catalog.get(spec.replacement or "")
            assert replacement is not None
            assert replacement.upstream_option("api") == "generateContent"
            assert replacement.shutdown_date is None


@pytest.mark.parametrize("table", list(sizes.SIZE_TABLES))
def test_native_sizes_have_the_ratio_they_claim(table: str) -> None:
    for size, choice in sizes.SIZE_TABLES[table].items():
        width, height = (int(side) for side in choice.native.split("x"))
        ratio_w, ratio_h = (int(side) for side in choice.aspect_ratio.split(":"))
        # Google's sizes round the ratio (Imagen's 4:3 is 1280x896): within 8 %.
        assert abs(width * ratio_h / (height * ratio_w) - 1) < 0.08, (table, size)
        if size == choice.native:
            continue
        # An OpenAI size mapped onto a ratio: the same shape within a few percent.
        w, h = (int(side) for side in size.split("x"))
        assert abs(w * ratio_h / (h * ratio_w) - 1) < 0.03, (table, size)


def test_no_size_falls_back_to_square() -> None:
    with pytest.raises(InvalidRequest) as caught:
        sizes.choose("imagen-4", "1536x1024", model_id="google/imagen-4.0")
    assert caught.value.param == "size"
    assert "'2816x1536'" in caught.value.message


# ------------------------------------------------------------------------------------- Imagen


def test_imagen_answer_with_safety_attributes_and_filtered_samples(catalog: Catalog) -> None:
    request = _request(catalog, "google/imagen-4.0", n=3)
    choice = sizes.choose("imagen-4", "1024x1024", model_id="x")
    payload = {
        "predictions": [
            {"bytesBase64Encoded": _png(8, 8), "mimeType": "image/png"},
            {"raiFilteredReason": "filtered"},
            {"contentType": "Positive Prompt", "safetyAttributes": {}},
        ]
    }
    result = imagen.parse_predictions(payload, request, choice)
    assert (len(result.images), result.filtered, result.size) == (1, 2, "8x8")


def test_imagen_answer_with_more_images_than_asked_is_bad(catalog: Catalog) -> None:
    request = _request(catalog, "google/imagen-4.0", n=1)
    choice = sizes.choose("imagen-4", "1024x1024", model_id="x")
    image = {"bytesBase64Encoded": _png(8, 8), "mimeType": "image/png"}
    with pytest.raises(UpstreamBadResponse):
        imagen.parse_predictions({"predictions": [image, image]}, request, choice)


def test_imagen_all_filtered(catalog: Catalog) -> None:
    request = _request(catalog, "google/imagen-4.0", n=2)
    choice = sizes.choose("imagen-4", "1024x1024", model_id="x")
    with pytest.raises(ContentPolicyViolation):
        imagen.parse_predictions({}, request, choice)


# ------------------------------------------------------------------------------------- Gemini


def test_gemini_image_part_after_text_and_thoughts(catalog: Catalog) -> None:
    request = _request(catalog, "google/gemini-3-pro-image")
    payload = {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {"text": "thinking", "thought": True},
                        {
                            "inlineData": {"mimeType": "image/png", "data": _png(2, 2)},
                            "thought": True,
                        },
                        {"text": "Here you go."},
                        {"inlineData": {"mimeType": "image/png", "data": _png(4, 3)}},
                    ]
                },
                "finishReason": "STOP",
            }
        ]
    }
    outcome = gemini.parse_content(payload, request)
    assert outcome.image is not None
    assert dimensions(outcome.image.b64()) == (4, 3)
    assert outcome.image.revised_prompt is None


@pytest.mark.parametrize("reason", sorted(gemini.SAFETY_FINISH_REASONS))
def test_gemini_safety_finish_reasons_are_filtered(catalog: Catalog, reason: str) -> None:
    request = _request(catalog, "google/gemini-3-pro-image")
    outcome = gemini.parse_content({"candidates": [{"finishReason": reason}]}, request)
    assert outcome.filtered


@pytest.mark.parametrize("reason", ["NO_IMAGE", "IMAGE_OTHER", "OTHER", "MAX_TOKENS", None])
def test_gemini_other_imageless_answers_are_failures(catalog: Catalog, reason: str | None) -> None:
    request = _request(catalog, "google/gemini-3-pro-image")
    with pytest.raises(UpstreamBadResponse):
        gemini.parse_content({"candidates": [{"finishReason": reason}]}, request)


def test_gemini_body_without_tier_for_gemini_25(catalog: Catalog) -> None:
    request = _request(catalog, "google/gemini-2.5-flash-image", prompt="un renard 🦊")
    body = gemini.content_body(request, sizes.choose("gemini-2.5", "1152x896", model_id="x"))
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "un renard 🦊"}]}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": "5:4"},
        },
    }


# ------------------------------------------------------------------------------------- revised


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a lighthouse at dusk", False),
        ("A  Lighthouse at DUSK", False),
        ("Here is your image!", False),
        ("A lighthouse", False),  # shorter: not a rewrite
        ("A red lighthouse at dusk, waves breaking on black rocks", True),
        ("", False),
    ],
)
def test_rewritten_prompt(text: str, expected: bool) -> None:
    assert (rewritten_prompt(text, "a lighthouse at dusk") is not None) is expected


# ------------------------------------------------------------------------------------- headers


def test_dimensions_of_png_and_jpeg() -> None:
    assert dimensions(_png(1408, 768)) == (1408, 768)
    assert dimensions(_jpeg(896, 1280)) == (896, 1280)
    assert dimensions(_jpeg(640, 480, exif=True)) == (640, 480)
    assert dimensions(base64.b64encode(b"GIF89a...").decode()) is None
    assert dimensions("not base64 at all!") is None


# ------------------------------------------------------------------------------------- errors


def _error(status: int, canonical: str, message: str = "m", **extra: Any) -> bytes:
    return json.dumps(
        {"error": {"code": status, "status": canonical, "message": message, **extra}}
    ).encode()


def test_safety_reason_in_error_info_is_a_content_policy_violation() -> None:
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "PUBLIC_ERROR_UNSAFE_GENERATION",
        }
    ]
    error = translate_error(400, _error(400, "INVALID_ARGUMENT", details=details), {})
    assert isinstance(error, ContentPolicyViolation)


def test_retry_info_and_header_and_cap() -> None:
    info = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]
    assert translate_error(429, _error(429, "RESOURCE_EXHAUSTED", details=info), {}).headers == {
        "retry-after": "3"
    }
    capped = translate_error(429, b"{}", {"retry-after": "9999"})
    assert isinstance(capped, RateLimited)
    assert capped.headers == {"retry-after": "120"}


def test_api_key_reason_and_bodies_that_are_not_googles() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    assert isinstance(
        translate_error(400, _error(400, "INVALID_ARGUMENT", details=details), {}),
        UpstreamAuthFailed,
    )
    assert isinstance(translate_error(502, b"<html>", {}), UpstreamError)
    wrapped = json.dumps([{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "x"}}])
    assert type(translate_error(400, wrapped.encode(), {})) is InvalidRequest
