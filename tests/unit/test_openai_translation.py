"""The OpenAI provider's pure translation: request body, response parsing, error mapping."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from imagegw.catalog import Catalog, load_catalog
from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidRequest,
    ModelUnavailable,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
)
from imagegw.providers.base import ImageRequest
from imagegw.providers.openai import (
    DEFAULT_RETRY_AFTER_SECONDS,
    parse_result,
    request_body,
    translate_error,
)

from support.fakes import TINY_PNG

TINY_B64 = base64.b64encode(TINY_PNG).decode("ascii")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _request(catalog: Catalog, model_id: str, **fields: Any) -> ImageRequest:
    spec = catalog.get(model_id)
    assert spec is not None
    values: dict[str, Any] = {
        "spec": spec,
        "upstream_model": spec.upstream_model,
        "prompt": "a lighthouse",
        "n": 1,
        "timeout_seconds": 60.0,
        **fields,
    }
    return ImageRequest(**values)


def _error_body(**error: Any) -> bytes:
    return json.dumps(
        {"error": {"message": "", "type": None, "param": None, "code": None, **error}}
    ).encode()


# ---------------------------------------------------------------- request_body


GPT_IMAGE_MODELS = [
    "openai/gpt-image-1",
    "openai/gpt-image-1-mini",
    "openai/gpt-image-1.5",
    "openai/gpt-image-2",
    "openai/gpt-image-2.5-flare",
    "openai/gpt-image-2.5-sunburst",
]


@pytest.mark.parametrize("model_id", GPT_IMAGE_MODELS)
def test_gpt_image_models_never_get_response_format(catalog: Catalog, model_id: str) -> None:
    body = request_body(_request(catalog, model_id, n=2, size="1024x1024"))
    assert "response_format" not in body
    assert body == {
        "model": model_id.split("/", 1)[1],
        "prompt": "a lighthouse",
        "n": 2,
        "size": "1024x1024",
    }


@pytest.mark.parametrize("model_id", ["openai/dall-e-2", "openai/dall-e-3"])
def test_dall_e_models_ask_for_base64(catalog: Catalog, model_id: str) -> None:
    body = request_body(_request(catalog, model_id))
    assert body["response_format"] == "b64_json"


def test_every_accepted_parameter_is_passed_as_given(catalog: Catalog) -> None:
    fields = {
        "size": "2048x1152",
        "quality": "xhigh",
        "background": "transparent",
        "output_format": "webp",
        "output_compression": 0,
        "moderation": "low",
        "complexity": "high",
        "user": "user-7",
        "safety_identifier": "hashed-user-7",
    }
    request = _request(
        catalog,
        "openai/gpt-image-2.5-sunburst",
        upstream_model="gpt-image-2.5-sunburst-2026-09-08",
        n=3,
        **fields,
    )
    assert request_body(request) == {
        "model": "gpt-image-2.5-sunburst-2026-09-08",
        "prompt": "a lighthouse",
        "n": 3,
        **fields,
    }


def test_dall_e_3_style_and_quality_are_passed(catalog: Catalog) -> None:
    body = request_body(
        _request(catalog, "openai/dall-e-3", style="natural", quality="hd", size="1792x1024")
    )
    assert body == {
        "model": "dall-e-3",
        "prompt": "a lighthouse",
        "n": 1,
        "style": "natural",
        "quality": "hd",
        "size": "1792x1024",
        "response_format": "b64_json",
    }


def test_body_is_json_serialisable_with_unicode(catalog: Catalog) -> None:
    body = request_body(_request(catalog, "openai/gpt-image-1.5", prompt="phare — 灯台"))
    assert json.loads(json.dumps(body, ensure_ascii=False))["prompt"] == "phare — 灯台"


# ---------------------------------------------------------------- parse_result


def test_parse_result_passes_everything_back(catalog: Catalog) -> None:
    usage = {
        "input_tokens": 50,
        "output_tokens": 60,
        "total_tokens": 110,
        "input_tokens_details": {"text_tokens": 50, "image_tokens": 0},
    }
    payload = {
        "created": 1,
        "data": [{"b64_json": TINY_B64}, {"b64_json": TINY_B64, "revised_prompt": "a tall one"}],
        "size": "1536x1024",
        "quality": "high",
        "background": "opaque",
        "output_format": "png",
        "usage": usage,
    }
    result = parse_result(payload, _request(catalog, "openai/gpt-image-1.5", n=2))
    assert [image.data() for image in result.images] == [TINY_PNG, TINY_PNG]
    assert [image.revised_prompt for image in result.images] == [None, "a tall one"]
    assert [image.media_type for image in result.images] == ["image/png", "image/png"]
    assert (result.size, result.quality, result.background, result.output_format) == (
        "1536x1024",
        "high",
        "opaque",
        "png",
    )
    assert result.usage == usage
    assert result.filtered == 0


@pytest.mark.parametrize(
    ("upstream_format", "requested_format", "media_type"),
    [
        ("jpeg", None, "image/jpeg"),
        ("webp", "png", "image/webp"),
        (None, "jpeg", "image/jpeg"),
        (None, None, "image/png"),
    ],
)
def test_parse_result_media_type_follows_the_format(
    catalog: Catalog, upstream_format: str | None, requested_format: str | None, media_type: str
) -> None:
    payload: dict[str, Any] = {"data": [{"b64_json": TINY_B64}]}
    if upstream_format:
        payload["output_format"] = upstream_format
    result = parse_result(
        payload, _request(catalog, "openai/gpt-image-1.5", output_format=requested_format)
    )
    assert result.images[0].media_type == media_type


def test_dall_e_answer_without_usage_or_resolved_fields(catalog: Catalog) -> None:
    payload = {"created": 1, "data": [{"b64_json": TINY_B64, "revised_prompt": "revised"}]}
    result = parse_result(payload, _request(catalog, "openai/dall-e-3"))
    assert result.usage is None
    assert result.size is None
    assert result.quality is None
    assert result.images[0].revised_prompt == "revised"


def test_fewer_images_than_asked_are_reported_as_filtered(catalog: Catalog) -> None:
    payload = {"data": [{"b64_json": TINY_B64}, {"b64_json": TINY_B64}]}
    result = parse_result(payload, _request(catalog, "openai/gpt-image-1.5", n=4))
    assert len(result.images) == 2
    assert result.filtered == 2


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"data": []}, id="zero-images"),
        pytest.param({"created": 1}, id="no-data"),
        pytest.param({"data": None}, id="data-null"),
        pytest.param({"data": {"b64_json": TINY_B64}}, id="data-object"),
        pytest.param({"data": [{"url": "https://example.test/x.png"}]}, id="url-not-b64"),
        pytest.param({"data": [{"b64_json": None}]}, id="b64-null"),
        pytest.param({"data": [{"b64_json": 42}]}, id="b64-number"),
        pytest.param({"data": [{"b64_json": ""}]}, id="b64-empty"),
        pytest.param({"data": [{"b64_json": "abc"}]}, id="b64-bad-length"),
        pytest.param({"data": ["not-an-object"]}, id="item-not-object"),
        pytest.param({"data": [{"b64_json": TINY_B64}] * 3}, id="more-than-asked"),
        pytest.param([], id="array"),
        pytest.param("ok", id="string"),
        pytest.param(None, id="null"),
    ],
)
def test_malformed_answer_is_a_bad_upstream_response(catalog: Catalog, payload: Any) -> None:
    with pytest.raises(UpstreamBadResponse) as caught:
        parse_result(payload, _request(catalog, "openai/gpt-image-1.5", n=2))
    assert caught.value.status == 502
    assert caught.value.code == "upstream_bad_response"


@pytest.mark.parametrize(
    "b64",
    ["!!!!", "QUJD\n", "QU=D", "QUJDR", "QUJD====", "QUJ-", "é===", ""],
    ids=[
        "symbols",
        "newline",
        "pad-inside",
        "length",
        "long-pad",
        "url-safe",
        "non-ascii",
        "empty",
    ],
)
def test_base64_that_does_not_decode_is_refused_where_it_comes_in(
    catalog: Catalog, b64: str
) -> None:
    # Refused before anything is delivered: a caller never gets an image that does not decode.
    with pytest.raises(UpstreamBadResponse) as caught:
        parse_result({"data": [{"b64_json": b64}]}, _request(catalog, "openai/dall-e-2"))
    assert caught.value.status == 502


# ---------------------------------------------------------------- translate_error


def _translate(status: int, content: bytes = b"", **headers: str) -> GatewayError:
    return translate_error(status, content, httpx.Headers(headers))


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            _error_body(
                message="Your request was rejected as a result of our safety system.",
                type="invalid_request_error",
                code="content_policy_violation",
            ),
            id="dall-e-content-policy",
        ),
        pytest.param(
            _error_body(
                message="Your request was rejected by the safety system.",
                type="image_generation_user_error",
                code="moderation_blocked",
            ),
            id="gpt-image-moderation-blocked",
        ),
        pytest.param(
            _error_body(message="rejected", type="image_generation_user_error"),
            id="user-error-type-only",
        ),
        pytest.param(_error_body(message="blocked", code="moderation_blocked"), id="code-only"),
    ],
)
def test_upstream_safety_refusal_is_a_content_policy_violation(content: bytes) -> None:
    error = _translate(400, content)
    assert isinstance(error, ContentPolicyViolation)
    assert error.status == 400
    assert error.code == "content_policy_violation"
    assert error.should_retry is False


def test_other_upstream_400_is_an_invalid_request_with_the_upstream_param() -> None:
    content = _error_body(
        message="Invalid value: '1254x836'.",
        type="invalid_request_error",
        param="size",
        code="invalid_value",
    )
    error = _translate(400, content)
    assert type(error) is InvalidRequest
    assert error.status == 400
    assert error.param == "size"
    assert error.code == "invalid_value"
    assert "Invalid value: '1254x836'." in error.message


@pytest.mark.parametrize("content", [b"", b"<html>Bad Request</html>", b'{"error": "x"}', b"[]"])
def test_upstream_400_without_an_error_object_is_still_a_400(content: bytes) -> None:
    error = _translate(400, content)
    assert type(error) is InvalidRequest
    assert error.status == 400
    assert error.param is None


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_failure_is_the_gateways_problem(status: int) -> None:
    upstream_message = "Incorrect API key provided: sk-proj-abcd***wxyz. You can find your key"
    error = _translate(
        status,
        _error_body(message=upstream_message, type="invalid_request_error", code="invalid_api_key"),
    )
    assert isinstance(error, UpstreamAuthFailed)
    assert error.status == 502
    assert error.code == "upstream_auth_failed"
    assert upstream_message not in error.message
    assert "sk-proj" not in error.message


def test_upstream_404_is_model_unavailable() -> None:
    error = _translate(
        404, _error_body(message="The model `dall-e-3` does not exist", code="model_not_found")
    )
    assert isinstance(error, ModelUnavailable)
    assert error.status == 404
    assert error.param == "model"


RATE_LIMIT_BODY = _error_body(
    message="Rate limit exceeded for images per minute.",
    type="requests",
    code="rate_limit_exceeded",
)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        pytest.param({"retry-after": "7"}, "7", id="retry-after"),
        pytest.param({"Retry-After": "7"}, "7", id="retry-after-capitalised"),
        pytest.param({"retry-after-ms": "1500"}, "2", id="retry-after-ms-rounded-up"),
        pytest.param({"retry-after-ms": "20", "retry-after": "9"}, "1", id="ms-wins-minimum-1"),
        pytest.param({"retry-after": "0.2"}, "1", id="fraction-rounded-up"),
        pytest.param({}, str(DEFAULT_RETRY_AFTER_SECONDS), id="no-header"),
        pytest.param({"retry-after": "soon"}, str(DEFAULT_RETRY_AFTER_SECONDS), id="garbage"),
        pytest.param({"retry-after": "-3"}, str(DEFAULT_RETRY_AFTER_SECONDS), id="negative"),
        pytest.param({"retry-after": "inf"}, str(DEFAULT_RETRY_AFTER_SECONDS), id="infinite"),
        pytest.param({"retry-after": "500"}, "120", id="capped"),
        pytest.param({"retry-after-ms": "600000"}, "120", id="ms-capped"),
    ],
)
def test_upstream_429_is_rate_limited_with_retry_after(
    headers: dict[str, str], seconds: str
) -> None:
    error = _translate(429, RATE_LIMIT_BODY, **headers)
    assert isinstance(error, RateLimited)
    assert error.status == 429
    assert error.code == "rate_limit_exceeded"
    assert error.response_headers() == {"x-should-retry": "true", "retry-after": seconds}
    assert seconds in error.message


@pytest.mark.parametrize(
    "content",
    [
        _error_body(message="You exceeded your current quota.", type="insufficient_quota"),
        _error_body(message="You exceeded your current quota.", code="insufficient_quota"),
    ],
)
def test_upstream_quota_exhausted_is_503_not_retryable(content: bytes) -> None:
    error = _translate(429, content, **{"retry-after": "1"})
    assert isinstance(error, ServiceUnavailable)
    assert error.status == 503
    assert error.response_headers()["x-should-retry"] == "false"
    assert "retry-after" not in error.response_headers()


@pytest.mark.parametrize("status", [500, 502, 503, 520, 409, 422])
def test_upstream_failure_is_502_without_the_upstream_body(status: int) -> None:
    secret_detail = "stack trace at /srv/openai/internal.py line 42 org-SECRET"
    error = _translate(status, _error_body(message=secret_detail, type="server_error"))
    assert type(error) is UpstreamError
    assert error.status == 502
    assert error.code == "upstream_error"
    assert secret_detail not in error.message
    assert "org-SECRET" not in error.message
    assert str(status) in error.message
    assert error.response_headers()["x-should-retry"] == "false"
