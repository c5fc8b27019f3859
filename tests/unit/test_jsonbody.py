"""The response writer splices base64 in unescaped and is byte-for-byte json.dumps otherwise."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from imagegw.fastpath.base64text import Base64Text
from imagegw.fastpath.jsonbody import dump_parts, dumps, plain

IMAGE_B64 = base64.b64encode(os.urandom(30_000)).decode("ascii")


def reference(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    "body",
    [
        {"created": 1, "data": [{"b64_json": IMAGE_B64}]},
        {
            "created": 1,
            "data": [
                {"b64_json": IMAGE_B64, "revised_prompt": 'un "vélo" rouge \\ \n ☃ \u0001'},
                {"b64_json": IMAGE_B64[::-1]},
                {"url": "https://example.test/a.png?sig=1", "expires_at": 2},
            ],
            "size": "1024x1024",
            "usage": {"input_tokens": 3, "details": [1, 2.5, None, True]},
            "ignored_parameters": ["style"],
        },
        {"created": 1, "data": [{"b64_json": "aGk="}]},  # short: plain json.dumps
        {"created": 1, "data": []},
        {"error": {"message": "no data key", "type": "x", "param": None, "code": None}},
    ],
    ids=["one-image", "images-and-text", "short-b64", "no-images", "no-data"],
)
def test_bytes_are_exactly_what_json_dumps_writes(body: dict[str, Any]) -> None:
    assert dumps(body) == reference(body)
    # The pieces a server writes one after the other: the same bytes, in order.
    assert b"".join(dump_parts(body)) == reference(body)


def test_the_images_are_pieces_of_their_own_not_copied() -> None:
    answer = bytearray(b'{"data": [{"b64_json": "' + IMAGE_B64.encode() + b'"}]}')
    view = memoryview(answer)[24 : 24 + len(IMAGE_B64)]
    image = Base64Text.from_checked(view)
    second = Base64Text.from_str(IMAGE_B64[::-1])
    body = {"created": 1, "data": [{"b64_json": image}, {"url": "u"}, {"b64_json": second}]}
    parts = dump_parts(body)
    # Text, image, text, image, text: the quotes travel with the text around them.
    assert len(parts) == 5
    assert parts[1] is view
    assert parts[3] is second.ascii
    assert parts[0].endswith(b'"b64_json": "')
    assert parts[2].startswith(b'"}')
    assert b"".join(parts) == reference(plain(body))


@pytest.mark.parametrize(
    "hostile",
    [
        IMAGE_B64[:-8] + '","x":"',  # would break out of the string if spliced raw
        IMAGE_B64[:-8] + "\\u0022ab",
        IMAGE_B64[:-8] + "\n\t\x00abcd",
        IMAGE_B64[:-8] + "éabcdefg",
    ],
    ids=["quote", "backslash", "control", "non-ascii"],
)
def test_a_value_that_is_not_base64_is_escaped_as_before(hostile: str) -> None:
    body = {"created": 1, "data": [{"b64_json": hostile}, {"b64_json": IMAGE_B64}]}
    written = dumps(body)
    assert written == reference(body)
    assert json.loads(written)["data"][0]["b64_json"] == hostile


def test_a_lone_surrogate_is_written_as_an_escape_not_a_failure() -> None:
    # json.dumps(ensure_ascii=False).encode("utf-8") fails on it: an upstream's revised prompt
    # with "\ud800" must not turn a paid generation into a 500.
    body = {
        "created": 1,
        "data": [{"b64_json": IMAGE_B64, "revised_prompt": "a fox \ud800"}],
    }
    with pytest.raises(UnicodeEncodeError):
        reference(body)
    written = dumps(body)
    assert json.loads(written)["data"][0] == {
        "b64_json": IMAGE_B64,
        "revised_prompt": "a fox \ud800",
    }


def test_the_callers_body_is_not_changed() -> None:
    body = {"created": 1, "data": [{"b64_json": IMAGE_B64}]}
    dumps(body)
    assert body == {"created": 1, "data": [{"b64_json": IMAGE_B64}]}


def test_text_that_looks_like_a_marker_stays_text() -> None:
    prompt = '"imagegw-b64-00000000000000000000000000000000-0"'
    body = {"created": 1, "data": [{"b64_json": IMAGE_B64, "revised_prompt": prompt}]}
    assert json.loads(dumps(body))["data"][0] == {"b64_json": IMAGE_B64, "revised_prompt": prompt}


def test_base64_text_is_written_as_its_bytes_and_plain_makes_it_a_string() -> None:
    short = Base64Text(b"aGk=")
    body = {
        "created": 1,
        "data": [
            {"b64_json": Base64Text.from_str(IMAGE_B64), "revised_prompt": "x"},
            {"b64_json": short},
        ],
    }
    as_strings = {
        "created": 1,
        "data": [{"b64_json": IMAGE_B64, "revised_prompt": "x"}, {"b64_json": "aGk="}],
    }
    assert plain(body) == as_strings
    assert dumps(body) == reference(as_strings)
    assert plain({"error": {"message": "m"}}) == {"error": {"message": "m"}}


def test_a_stream_frame_with_a_lone_surrogate_is_written_not_failed() -> None:
    # An upstream's partial-image fields are relayed as they came (issue 12).
    from imagegw.generation.stream_events import frame

    written = frame("image_generation.partial_image", {"revised_prompt": "a fox \ud800"})
    data = written.split(b"data: ", 1)[1].strip()
    assert json.loads(data) == {"revised_prompt": "a fox \ud800"}
