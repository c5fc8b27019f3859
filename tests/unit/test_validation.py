"""Per-model validation: nothing is coerced, every refusal names the parameter and the choices."""

from __future__ import annotations

from typing import Any

import pytest

from imagegw.catalog import Catalog, ModelSpec, Resolution, load_catalog
from imagegw.errors import InvalidRequest, InvalidValue, PromptTooLong, UnsupportedParameter
from imagegw.generation.delivery_policy import HTTP_DELIVERY
from imagegw.generation.validation import ValidatedRequest, validate
from imagegw.schemas import ImageGenerationRequest

TIMEOUT = 42.0


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _spec(catalog: Catalog, model_id: str) -> ModelSpec:
    spec = catalog.get(model_id)
    assert spec is not None, model_id
    return spec


def _validate(catalog: Catalog, model_id: str, **fields: Any) -> ValidatedRequest:
    """Validate against the model's spec directly: lifecycle dates are the catalog's business."""
    spec = _spec(catalog, model_id)
    body = ImageGenerationRequest.model_validate({"prompt": "a lighthouse at dusk", **fields})
    return validate(
        body,
        Resolution(model_id, spec, spec.upstream_model),
        timeout_seconds=TIMEOUT,
        delivery=HTTP_DELIVERY,
    )


def _refusal(
    catalog: Catalog, model_id: str, error: type[InvalidRequest] = InvalidValue, **fields: Any
) -> InvalidRequest:
    with pytest.raises(error) as caught:
        _validate(catalog, model_id, **fields)
    assert caught.value.status == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value


# ---------------------------------------------------------------- the validated request


def test_validated_request_carries_model_prompt_and_timeout(catalog: Catalog) -> None:
    spec = _spec(catalog, "openai/gpt-image-2")
    body = ImageGenerationRequest.model_validate({"prompt": "a fox", "size": "1024x1024"})
    validated = validate(
        body,
        Resolution("x", spec, "gpt-image-2-2026-04-21"),
        timeout_seconds=TIMEOUT,
        delivery=HTTP_DELIVERY,
    )
    request = validated.image_request
    assert request.spec is spec
    assert request.upstream_model == "gpt-image-2-2026-04-21"
    assert request.prompt == "a fox"
    assert request.timeout_seconds == TIMEOUT
    assert request.size == "1024x1024"
    assert request.quality is None
    assert validated.response_format == "b64_json"
    assert validated.ignored_parameters == ()


def test_every_accepted_parameter_is_forwarded_unchanged(catalog: Catalog) -> None:
    fields = {
        "size": "1536x1024",
        "quality": "high",
        "background": "opaque",
        "output_format": "webp",
        "output_compression": 55,
        "moderation": "low",
        "user": "user-1",
        "safety_identifier": "safe-1",
        "complexity": "medium",
    }
    request = _validate(catalog, "openai/gpt-image-2.5-sunburst", **fields).image_request
    for name, value in fields.items():
        assert getattr(request, name) == value, name


# ---------------------------------------------------------------- n


@pytest.mark.parametrize(("given", "expected"), [(None, 1), (0, 1), (1, 1), (10, 10)])
def test_n_defaults_to_one(catalog: Catalog, given: int | None, expected: int) -> None:
    assert _validate(catalog, "openai/gpt-image-1.5", n=given).image_request.n == expected


@pytest.mark.parametrize(
    ("model_id", "n", "listing"),
    [
        ("openai/gpt-image-1.5", 11, "between 1 and 10"),
        ("openai/gpt-image-2", 11, "between 1 and 10"),
        ("openai/dall-e-2", 11, "between 1 and 10"),
        ("openai/dall-e-3", 2, "generates 1 image per request"),
        ("local/classic", 2, "generates 1 image per request"),
        ("google/imagen-4.0", 5, "between 1 and 4"),
        ("openai/gpt-image-1.5", -1, "between 1 and 10"),
        ("openai/dall-e-3", -3, "generates 1 image"),
    ],
)
def test_n_outside_the_model_range(catalog: Catalog, model_id: str, n: int, listing: str) -> None:
    error = _refusal(catalog, model_id, n=n)
    assert error.param == "n"
    assert error.code == "invalid_value"
    assert listing in error.message
    assert model_id in error.message


@pytest.mark.parametrize(("model_id", "n"), [("google/imagen-4.0", 4), ("openai/dall-e-3", 1)])
def test_n_at_the_model_limit_is_accepted(catalog: Catalog, model_id: str, n: int) -> None:
    assert _validate(catalog, model_id, n=n).image_request.n == n


# ---------------------------------------------------------------- size


@pytest.mark.parametrize(
    ("model_id", "size", "allowed"),
    [
        (
            "openai/gpt-image-1.5",
            "256x256",
            ["'auto'", "'1024x1024'", "'1536x1024'", "'1024x1536'"],
        ),
        ("openai/dall-e-3", "256x256", ["'1024x1024'", "'1792x1024'", "'1024x1792'"]),
        ("openai/dall-e-2", "1792x1024", ["'256x256'", "'512x512'", "'1024x1024'"]),
        ("openai/dall-e-2", "auto", ["'256x256'", "'512x512'", "'1024x1024'"]),
        ("openai/gpt-image-1.5", "1024X1024", ["'1024x1024'"]),
        ("openai/gpt-image-1.5", "big", ["'1024x1024'"]),
    ],
)
def test_size_the_model_does_not_take(
    catalog: Catalog, model_id: str, size: str, allowed: list[str]
) -> None:
    error = _refusal(catalog, model_id, size=size)
    assert error.param == "size"
    assert f"'{size}'" in error.message
    for value in allowed:
        assert value in error.message


@pytest.mark.parametrize("size", ["1280x720", "2048x1152", "3840x2160", "1024x3072"])
def test_free_size_is_accepted_by_gpt_image_2(catalog: Catalog, size: str) -> None:
    assert _validate(catalog, "openai/gpt-image-2", size=size).image_request.size == size


@pytest.mark.parametrize("size", ["1280x720", "2048x1152"])
def test_free_size_is_refused_by_gpt_image_1_5(catalog: Catalog, size: str) -> None:
    error = _refusal(catalog, "openai/gpt-image-1.5", size=size)
    assert error.param == "size"
    assert "'1024x1536'" in error.message
    assert "any WxH" not in error.message


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        ("1000x1000", "multiples of 16"),
        ("4096x1024", "longest side"),
        ("3120x1024", "aspect ratio"),
        ("512x512", "pixel count"),
        ("0x1024", "any WxH"),
        ("01024x1024", "any WxH"),
    ],
)
def test_free_size_outside_the_rule_explains_why(catalog: Catalog, size: str, reason: str) -> None:
    error = _refusal(catalog, "openai/gpt-image-2", size=size)
    assert error.param == "size"
    assert reason in error.message
    assert "'1024x1024'" in error.message


# ---------------------------------------------------------------- enumerated values


@pytest.mark.parametrize(
    ("model_id", "param", "value", "allowed"),
    [
        ("openai/gpt-image-1.5", "quality", "hd", ["'auto'", "'low'", "'medium'", "'high'"]),
        ("openai/gpt-image-2", "quality", "xhigh", ["'auto'", "'low'", "'medium'", "'high'"]),
        ("openai/dall-e-3", "quality", "high", ["'standard'", "'hd'"]),
        ("openai/dall-e-2", "quality", "hd", ["'standard'"]),
        ("openai/dall-e-3", "style", "cartoon", ["'vivid'", "'natural'"]),
        ("local/classic", "style", "Vivid", ["'vivid'", "'natural'"]),
        ("openai/gpt-image-1.5", "background", "green", ["'auto'", "'transparent'", "'opaque'"]),
        ("openai/gpt-image-1.5", "moderation", "high", ["'auto'", "'low'"]),
        ("openai/gpt-image-1.5", "output_format", "gif", ["'png'", "'jpeg'", "'webp'"]),
        ("openai/gpt-image-1.5", "output_format", "jpg", ["'png'", "'jpeg'", "'webp'"]),
        ("openai/gpt-image-2.5-flare", "complexity", "extreme", ["'low'", "'medium'", "'high'"]),
    ],
)
def test_value_the_model_does_not_take(
    catalog: Catalog, model_id: str, param: str, value: str, allowed: list[str]
) -> None:
    error = _refusal(catalog, model_id, **{param: value})
    assert error.param == param
    assert error.code == "invalid_value"
    assert f"'{value}'" in error.message
    for choice in allowed:
        assert choice in error.message


def test_gpt_image_2_5_takes_its_extra_qualities(catalog: Catalog) -> None:
    request = _validate(catalog, "openai/gpt-image-2.5-flare", quality="max").image_request
    assert request.quality == "max"


@pytest.mark.parametrize(
    ("model_id", "param", "value"),
    [
        ("openai/gpt-image-1.5", "style", "vivid"),
        ("openai/gpt-image-2", "style", "natural"),
        ("local/classic", "background", "transparent"),
        ("openai/dall-e-3", "background", "opaque"),
        ("openai/dall-e-3", "output_format", "png"),
        ("openai/dall-e-3", "moderation", "low"),
        ("openai/dall-e-2", "style", "vivid"),
        ("openai/gpt-image-1.5", "complexity", "low"),
        ("openai/dall-e-3", "output_compression", 50),
        ("openai/dall-e-3", "safety_identifier", "s-1"),
    ],
)
def test_parameter_the_model_does_not_accept_at_all(
    catalog: Catalog, model_id: str, param: str, value: object
) -> None:
    error = _refusal(catalog, model_id, UnsupportedParameter, **{param: value})
    assert error.param == param
    assert error.code == "unsupported_parameter"
    assert model_id in error.message
    assert "'size'" in error.message  # lists what the model does accept


# ---------------------------------------------------------------- ignored parameters


def test_google_ignores_quality_and_style_and_says_so(catalog: Catalog) -> None:
    validated = _validate(
        catalog, "google/imagen-4.0", quality="hd", style="vivid", size="1024x1024"
    )
    assert validated.ignored_parameters == ("quality", "style")
    assert validated.image_request.quality is None
    assert validated.image_request.style is None
    assert validated.image_request.size == "1024x1024"


def test_google_ignored_values_are_not_checked(catalog: Catalog) -> None:
    validated = _validate(catalog, "google/imagen-4.0", quality="anything-at-all")
    assert validated.ignored_parameters == ("quality",)
    assert validated.image_request.quality is None


def test_nothing_ignored_when_nothing_ignorable_is_sent(catalog: Catalog) -> None:
    assert _validate(catalog, "google/imagen-4.0").ignored_parameters == ()


# ---------------------------------------------------------------- prompt


@pytest.mark.parametrize("prompt", ["", " ", "\n\t  "])
def test_empty_prompt(catalog: Catalog, prompt: str) -> None:
    error = _refusal(catalog, "openai/gpt-image-1.5", prompt=prompt)
    assert error.param == "prompt"


@pytest.mark.parametrize(
    ("model_id", "limit"),
    [
        ("openai/dall-e-2", 1000),
        ("openai/dall-e-3", 4000),
        ("local/classic", 4000),
        ("openai/gpt-image-1.5", 32000),
        ("openai/gpt-image-2", 32000),
    ],
)
def test_prompt_length_limit(catalog: Catalog, model_id: str, limit: int) -> None:
    assert _validate(catalog, model_id, prompt="a" * limit).image_request.prompt == "a" * limit
    error = _refusal(catalog, model_id, PromptTooLong, prompt="a" * (limit + 1))
    assert error.param == "prompt"
    assert error.code == "string_above_max_length"
    assert str(limit) in error.message
    assert str(limit + 1) in error.message


# ---------------------------------------------------------------- output options


@pytest.mark.parametrize("compression", [0, 100, 55])
@pytest.mark.parametrize("output_format", ["jpeg", "webp"])
def test_output_compression_in_range(
    catalog: Catalog, compression: int, output_format: str
) -> None:
    request = _validate(
        catalog,
        "openai/gpt-image-1.5",
        output_format=output_format,
        output_compression=compression,
    ).image_request
    assert request.output_compression == compression


@pytest.mark.parametrize("compression", [-1, 101, 1000])
def test_output_compression_out_of_range(catalog: Catalog, compression: int) -> None:
    error = _refusal(
        catalog, "openai/gpt-image-1.5", output_format="jpeg", output_compression=compression
    )
    assert error.param == "output_compression"
    assert "between 0 and 100" in error.message


@pytest.mark.parametrize("fields", [{"output_format": "png"}, {}])
def test_output_compression_needs_a_lossy_format(catalog: Catalog, fields: dict[str, str]) -> None:
    error = _refusal(catalog, "openai/gpt-image-1.5", output_compression=50, **fields)
    assert error.param == "output_compression"
    assert "'png'" in error.message


def test_transparent_background_with_jpeg(catalog: Catalog) -> None:
    error = _refusal(
        catalog, "openai/gpt-image-1.5", background="transparent", output_format="jpeg"
    )
    assert error.param == "background"
    assert "'jpeg'" in error.message


@pytest.mark.parametrize("fields", [{"output_format": "png"}, {"output_format": "webp"}, {}])
def test_transparent_background_with_png_or_webp(catalog: Catalog, fields: dict[str, str]) -> None:
    request = _validate(
        catalog, "openai/gpt-image-1.5", background="transparent", **fields
    ).image_request
    assert request.background == "transparent"


# ---------------------------------------------------------------- streaming and delivery


@pytest.mark.parametrize("model_id", ["openai/gpt-image-1.5", "local/sketch", "openai/dall-e-3"])
@pytest.mark.parametrize("partial_images", [None, 0, 1, 3])
def test_every_model_streams_with_zero_to_three_partial_images(
    catalog: Catalog, model_id: str, partial_images: int | None
) -> None:
    fields: dict[str, Any] = {"stream": True}
    if partial_images is not None:
        fields["partial_images"] = partial_images
    validated = _validate(catalog, model_id, **fields)
    assert validated.image_request.partial_images == (partial_images or 0)


@pytest.mark.parametrize("n", [2, 4])
def test_stream_with_more_than_one_image_is_openais_own_400(catalog: Catalog, n: int) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _validate(catalog, "openai/gpt-image-1.5", stream=True, n=n)
    error = caught.value
    assert error.body() == {
        "error": {
            "message": "Streaming is only supported with n=1.",
            "type": "image_generation_user_error",
            "param": "input",
            "code": "unsupported_parameter",
        }
    }
    assert error.status == 400


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"stream": True, "partial_images": 4}, "between 0 and 3"),
        ({"stream": True, "partial_images": -1}, "between 0 and 3"),
        ({"partial_images": 2}, "'stream': true"),
        ({"stream": False, "partial_images": 1}, "'stream': true"),
    ],
)
def test_partial_images_out_of_range_or_without_stream_is_refused(
    catalog: Catalog, fields: dict[str, Any], fragment: str
) -> None:
    error = _refusal(catalog, "openai/gpt-image-1.5", InvalidValue, **fields)
    assert error.param == "partial_images"
    assert fragment in error.message


def test_stream_false_and_zero_partial_images_are_accepted(catalog: Catalog) -> None:
    validated = _validate(catalog, "openai/gpt-image-1.5", stream=False, partial_images=0)
    assert validated.image_request.n == 1


@pytest.mark.parametrize(
    ("model_id", "given", "expected"),
    [
        ("openai/gpt-image-1.5", None, "b64_json"),
        ("openai/gpt-image-1.5", "b64_json", "b64_json"),
        ("openai/gpt-image-1.5", "url", "url"),
        ("openai/dall-e-3", "url", "url"),
        ("local/sketch", "url", "url"),
    ],
)
def test_response_format(catalog: Catalog, model_id: str, given: str | None, expected: str) -> None:
    assert _validate(catalog, model_id, response_format=given).response_format == expected


@pytest.mark.parametrize("value", ["json", "URL", "base64", ""])
def test_unknown_response_format(catalog: Catalog, value: str) -> None:
    error = _refusal(catalog, "openai/gpt-image-1.5", response_format=value)
    assert error.param == "response_format"
    assert "'b64_json'" in error.message
    assert "'url'" in error.message


# ------------------------------------------------------------ every accepted parameter travels

# A value each parameter accepts, for the models that list the parameter.
_SAMPLE_VALUES: dict[str, Any] = {
    "user": "user-42",
    "safety_identifier": "hash-42",
    "output_compression": 50,
    "watermark": False,
    "seed": 42,
    "negative_prompt": "blurry, low contrast",
    "grow_mask": 0,
}


def _sample(spec: ModelSpec, name: str) -> Any:
    if name in _SAMPLE_VALUES:
        return _SAMPLE_VALUES[name]
    if name in spec.ignored_parameters:
        return {"quality": "hd", "style": "vivid"}.get(name, "anything")
    if name == "size":
        return spec.sizes[0] if spec.sizes else "1024x1024"
    choices = {
        "quality": spec.qualities,
        "style": spec.styles,
        "background": spec.backgrounds,
        "output_format": ("jpeg",) if "jpeg" in spec.output_formats else spec.output_formats,
        "moderation": spec.moderations,
        "person_generation": spec.person_generations,
        "complexity": spec.complexities,
    }[name]
    assert choices, f"{spec.id} lists {name} without the values it accepts"
    return choices[-1]


def test_every_parameter_a_model_accepts_reaches_its_provider(catalog: Catalog) -> None:
    """A parameter that validates but is not forwarded would be dropped without a word."""
    checked = 0
    for spec in catalog:
        for name in spec.parameters:
            value = _sample(spec, name)
            # Compression only applies to a lossy format, which must then be asked for too.
            companion = {"output_format": "jpeg"} if name == "output_compression" else {}
            validated = _validate(catalog, spec.id, **companion, **{name: value})
            forwarded = getattr(validated.image_request, name)
            if name in spec.ignored_parameters:
                assert forwarded is None
                assert name in validated.ignored_parameters
            else:
                assert forwarded == value, f"{spec.id}: {name} was not forwarded"
            checked += 1
    assert checked > 50
