"""Parsing of the raw request body: strict types, strict names, null means absent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imagegw.errors import (
    InvalidType,
    InvalidValue,
    MalformedBody,
    MissingParameter,
    UnknownParameter,
)
from imagegw.schemas import KNOWN_PARAMETERS, parse_generation_request


def _raw(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


def test_every_documented_field_is_parsed() -> None:
    document = {
        "prompt": "a red fox",
        "model": "openai/gpt-image-2",
        "n": 2,
        "size": "1024x1024",
        "quality": "high",
        "style": "vivid",
        "response_format": "url",
        "background": "opaque",
        "output_format": "jpeg",
        "output_compression": 80,
        "moderation": "low",
        "user": "u-1",
        "safety_identifier": "s-1",
        "complexity": "low",
        "watermark": False,
        "person_generation": "allow_adult",
        "seed": 42,
        "negative_prompt": "blurry",
        "grow_mask": 0,
        "stream": False,
        "partial_images": 0,
    }
    request = parse_generation_request(_raw(document))
    assert request.given() == document
    assert set(document) == set(KNOWN_PARAMETERS)


def test_null_means_absent() -> None:
    request = parse_generation_request(
        _raw({"prompt": "a fox", "n": None, "size": None, "model": None, "user": None})
    )
    assert request.given() == {"prompt": "a fox"}
    assert request.n is None
    assert request.model is None


def test_unicode_prompt_is_kept_exactly() -> None:
    prompt = "un renard roux 🦊 — 狐"
    request = parse_generation_request(json.dumps({"prompt": prompt}).encode("utf-8"))
    assert request.prompt == prompt


@pytest.mark.parametrize("name", ["foo", "cfg_scale", "Prompt", "frame_count"])
def test_unknown_parameter_is_refused_with_its_name(name: str) -> None:
    with pytest.raises(UnknownParameter) as caught:
        parse_generation_request(_raw({"prompt": "a fox", name: 1}))
    assert caught.value.param == name
    assert caught.value.code == "unknown_parameter"
    assert f"'{name}'" in caught.value.message


def test_unknown_parameter_is_reported_before_a_wrong_type() -> None:
    with pytest.raises(UnknownParameter) as caught:
        parse_generation_request(_raw({"prompt": "a fox", "n": "2", "steps": 4}))
    assert caught.value.param == "steps"


@pytest.mark.parametrize(
    ("document", "param", "expected"),
    [
        pytest.param({"prompt": "x", "n": "2"}, "n", "an integer", id="n-string"),
        pytest.param({"prompt": "x", "n": 1.5}, "n", "an integer", id="n-float"),
        pytest.param({"prompt": "x", "n": 2.0}, "n", "an integer", id="n-float-integral"),
        pytest.param({"prompt": "x", "n": True}, "n", "an integer", id="n-bool"),
        pytest.param({"prompt": 5}, "prompt", "a string", id="prompt-int"),
        pytest.param({"prompt": ["a"]}, "prompt", "a string", id="prompt-list"),
        pytest.param({"prompt": "x", "stream": "yes"}, "stream", "a boolean", id="stream-string"),
        pytest.param({"prompt": "x", "stream": 1}, "stream", "a boolean", id="stream-int"),
        pytest.param({"prompt": "x", "size": 1024}, "size", "a string", id="size-int"),
        pytest.param(
            {"prompt": "x", "output_compression": "80"},
            "output_compression",
            "an integer",
            id="compression-string",
        ),
        pytest.param({"prompt": "x", "model": {"id": "a"}}, "model", "a string", id="model-obj"),
    ],
)
def test_wrong_type_is_refused_with_the_parameter(
    document: dict[str, Any], param: str, expected: str
) -> None:
    with pytest.raises(InvalidType) as caught:
        parse_generation_request(_raw(document))
    assert caught.value.param == param
    assert caught.value.code == "invalid_type"
    assert caught.value.status == 400
    assert expected in caught.value.message


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({}, id="empty-object"),
        pytest.param({"n": 1}, id="no-prompt"),
        pytest.param({"prompt": None}, id="prompt-null"),
    ],
)
def test_missing_prompt(document: dict[str, Any]) -> None:
    with pytest.raises(MissingParameter) as caught:
        parse_generation_request(_raw(document))
    assert caught.value.param == "prompt"
    assert caught.value.code == "missing_required_parameter"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b'{"prompt": "a fox",', id="truncated"),
        pytest.param(b"{'prompt': 'a fox'}", id="single-quotes"),
        pytest.param(b'[{"prompt": "a fox"}]', id="array"),
        pytest.param(b'"a fox"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"prompt": "a \xff fox"}', id="invalid-utf8"),
        pytest.param(b"\xc3\x28", id="invalid-utf8-sequence"),
    ],
)
def test_malformed_body(raw: bytes) -> None:
    with pytest.raises(MalformedBody) as caught:
        parse_generation_request(raw)
    assert caught.value.code == "invalid_json"
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 5000 + b"]" * 5000, id="deep-array"),
        pytest.param(b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}", id="deep-in-object"),
    ],
)
def test_deeply_nested_json_is_a_client_error_not_a_crash(raw: bytes) -> None:
    # A few kilobytes of brackets must give the caller a 400, never a RecursionError (a 500).
    with pytest.raises((MalformedBody, InvalidType)) as caught:
        parse_generation_request(raw)
    assert caught.value.status == 400


def test_a_lone_surrogate_is_refused_and_a_surrogate_pair_is_a_character() -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_generation_request(b'{"prompt": "a fox \\ud83e"}')
    assert caught.value.param == "prompt"
    assert caught.value.code == "invalid_unicode"
    # "\ud83e\udd8a" is the JSON escape of the fox emoji: a character like any other.
    request = parse_generation_request(b'{"prompt": "a fox \\ud83e\\udd8a"}')
    assert request.prompt == "a fox \U0001f98a"
