"""``upstream_json.loads`` is ``json.loads``, with the data items' base64 images as bytes.

Whatever the bytes, it parses to what ``json.loads`` parses (once its ``Base64Text`` values are
strings again) and raises where ``json.loads`` raises; and on the answers upstreams send, the
images are ``Base64Text`` (not parsed as strings).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegw.fastpath import upstream_json
from imagegw.fastpath.base64text import Base64Text, is_base64, outside_alphabet
from imagegw.fastpath.jsonbody import plain

IMAGE = base64.b64encode(os.urandom(3000)).decode("ascii")
OTHER = base64.b64encode(os.urandom(2000) + b"\xfb\xff").decode("ascii")
assert len(IMAGE) >= upstream_json.MIN_CUT_BYTES
assert "+" in IMAGE + OTHER


def answer(*items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"created": 1, "data": list(items), "size": "1024x1024", **extra}


def as_plain(document: Any) -> Any:
    return plain(document) if isinstance(document, dict) else document


def check(content: bytes) -> Any:
    """``loads(content)``, asserted to agree with ``json.loads`` (value or error), also when the
    bytes outside the base64 alphabet were counted as the answer arrived (``outside``)."""
    counted = outside_alphabet(content)
    try:
        expected = json.loads(content)
    except ValueError as error:
        with pytest.raises(type(error)):
            upstream_json.loads(bytearray(content))
        with pytest.raises(type(error)):
            upstream_json.loads(bytearray(content), outside=counted)
        return None
    got = upstream_json.loads(bytearray(content))
    assert as_plain(got) == expected
    got_counted = upstream_json.loads(bytearray(content), outside=counted)
    assert as_plain(got_counted) == expected
    assert kinds(got_counted) == kinds(got)
    return got


def kinds(document: Any) -> list[type]:
    """The types of the data items' images: ``Base64Text`` where the bytes were kept."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        return []
    return [type(item.get("b64_json")) for item in document["data"] if isinstance(item, dict)]


def images_of(document: Any) -> list[Any]:
    return [item.get("b64_json") for item in document["data"] if isinstance(item, dict)]


@pytest.mark.parametrize(
    "separators", [(",", ":"), (", ", ": "), (",\n", " :\t\r\n ")], ids=["compact", "spaced", "ws"]
)
def test_images_of_a_real_answer_come_back_as_bytes(separators: tuple[str, str]) -> None:
    document = answer(
        {"b64_json": IMAGE, "revised_prompt": 'a "b64_json": "QUJD" fox'},
        {"b64_json": OTHER},
        usage={"input_tokens": 3, "output_tokens": 4},
    )
    got = check(json.dumps(document, separators=separators).encode())
    assert images_of(got) == [Base64Text.from_str(IMAGE), Base64Text.from_str(OTHER)]
    assert got["data"][0]["revised_prompt"] == 'a "b64_json": "QUJD" fox'
    assert got["usage"] == {"input_tokens": 3, "output_tokens": 4}


@pytest.mark.parametrize(
    "content",
    [
        # Escaped slashes (some JSON encoders write them): parsed as a string, as json.loads does.
        json.dumps(answer({"b64_json": IMAGE})).replace("/", "\\/").encode(),
        # Not base64: left to json.loads, and to the provider's check.
        json.dumps(answer({"b64_json": IMAGE[:-4] + "!!!!"})).encode(),
        json.dumps(answer({"b64_json": IMAGE[:-4] + "\u00e9\u00e9\u00e9\u00e9"})).encode(),
        # Short: not worth cutting.
        json.dumps(answer({"b64_json": "QUJD"})).encode(),
        # Outside the data items: json.loads decides.
        json.dumps({"created": 1, "data": [], "usage": {"b64_json": IMAGE}}).encode(),
        json.dumps({"b64_json": IMAGE}).encode(),
        json.dumps([{"b64_json": IMAGE}]).encode(),
        json.dumps(answer({"nested": {"b64_json": IMAGE}})).encode(),
        # The key's text inside a string value, made to look like a key.
        json.dumps(answer({"revised_prompt": f'x", "b64_json": "{IMAGE}'})).encode(),
        json.dumps(answer({'x"b64_json': IMAGE})).encode(),
        b'{"data": [{"revised_prompt": "\\\\", "b64_json": "' + IMAGE.encode() + b'"}]}',
        # Duplicate keys: json.loads keeps the last.
        b'{"data": [{"b64_json": "'
        + IMAGE.encode()
        + b'", "b64_json": "'
        + OTHER.encode()
        + b'"}]}',
        # Not JSON, in several ways.
        json.dumps(answer({"b64_json": IMAGE})).encode()[:-3],
        b'{"data": [{"b64_json": "' + IMAGE.encode() + b"}]}",
        b'{"data": [{"b64_json": "' + IMAGE.encode() + b'"}]} trailing',
        b'{"data": [{"b64_json": "' + IMAGE.encode() + b'" "x"}]}',
        b'{"data": [{"b64_json": ' + IMAGE.encode() + b"}]}",
        b"\xff\xfe not json",
        b"",
        # Other encodings json.loads detects.
        json.dumps(answer({"b64_json": IMAGE})).encode("utf-16"),
        b"\xef\xbb\xbf" + json.dumps(answer({"b64_json": IMAGE})).encode(),
    ],
    ids=[
        "escaped-slash",
        "symbols",
        "non-ascii",
        "short",
        "in-usage",
        "top-level",
        "array",
        "nested",
        "in-a-string",
        "escaped-quote-key",
        "after-backslash-string",
        "duplicate-key",
        "truncated",
        "unterminated",
        "trailing",
        "missing-comma",
        "unquoted",
        "binary",
        "empty",
        "utf-16",
        "utf-8-bom",
    ],
)
def test_anything_else_parses_as_json_loads_parses_it(content: bytes) -> None:
    check(content)


def test_a_value_with_the_marker_text_stays_text() -> None:
    document = answer({"b64_json": IMAGE, "revised_prompt": "imagegw-cut-0"}, {"b64_json": OTHER})
    got = check(json.dumps(document).encode())
    assert got["data"][0]["revised_prompt"] == "imagegw-cut-0"


# Strings that stress the scan: base64 (long and short), and text full of quotes and escapes.
TEXT = st.text(alphabet=st.sampled_from('ab"\\/:, {}b64_json\n\u00e9'), max_size=30)
VALUES = st.one_of(
    st.sampled_from([IMAGE, OTHER, IMAGE[:-1] + "=", IMAGE[:-2] + "=A", "QUJD"]),
    TEXT,
    st.integers(),
    st.none(),
)
ITEMS = st.dictionaries(st.one_of(st.sampled_from(["b64_json", "revised_prompt"]), TEXT), VALUES)


def cuttable(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) >= upstream_json.MIN_CUT_BYTES
        and is_base64(value.encode())
    )


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(st.one_of(ITEMS, VALUES), max_size=4),
    extra=st.dictionaries(st.one_of(st.just("b64_json"), TEXT), VALUES, max_size=3),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " : ")]),
    ascii_only=st.booleans(),
)
def test_generated_answers_parse_as_json_loads_parses_them(
    items: list[Any], extra: dict[str, Any], separators: tuple[str, str], ascii_only: bool
) -> None:
    document = {**extra, "data": items}
    got = check(json.dumps(document, separators=separators, ensure_ascii=ascii_only).encode())
    # Images are bytes, unless a "b64_json" outside the data items sent it all to json.loads.
    fast = not cuttable(extra.get("b64_json"))
    for item, sent in zip(got["data"], items, strict=True):
        if isinstance(sent, dict) and cuttable(sent.get("b64_json")):
            assert isinstance(item["b64_json"], Base64Text) == fast


@settings(max_examples=300, deadline=None)
@given(
    position=st.integers(min_value=0),
    inserted=st.sampled_from([b'"', b"\\", b'"b64_json":"', b"}", b",", b"=", b"\x00", b"\xc3"]),
    replace=st.booleans(),
)
def test_damaged_answers_fail_or_parse_as_json_loads_decides(
    position: int, inserted: bytes, replace: bool
) -> None:
    content = json.dumps(
        answer({"b64_json": "QUJD" * 300, "revised_prompt": "x"}, {"b64_json": OTHER})
    ).encode()
    at = position % (len(content) + 1)
    check(content[:at] + inserted + content[at + (1 if replace else 0) :])


def test_a_value_that_is_not_base64_leaves_the_others_as_bytes() -> None:
    # An escape json.loads decodes (to "A"): as bytes, the value is not base64.
    broken = IMAGE[:-8].encode() + b"\\u0041AA"
    content = b'{"data": [{"b64_json": "%s"}, {"b64_json": "%s"}, {"b64_json": "%s"}]}' % (
        IMAGE.encode(),
        broken,
        OTHER.encode(),
    )
    got = check(content)
    assert images_of(got) == [
        Base64Text.from_str(IMAGE),
        IMAGE[:-8] + "AAA",
        Base64Text.from_str(OTHER),
    ]
