"""``is_base64`` accepts exactly the standard base64 that strict decoders take."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from imagegw.fastpath.base64text import Base64Text, is_base64


def strictly_decodes(data: bytes) -> bool:
    # binascii's strict mode, plus whole quads with padding only at the end of the last one: it
    # accepts a stray "=" after a complete quad, and a quad of nothing but padding ("AAAA====").
    try:
        binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error:
        return False
    if len(data) % 4:
        return False
    body, last = data[:-4], data[-4:]
    padding = len(last) - len(last.rstrip(b"="))
    return b"=" not in body and padding <= 2


# Mostly characters near the edges of the rules: padding, URL-safe, whitespace, escapes.
EDGY = st.sampled_from(list(b'ABQgw+/=\n -_\\"\x00\xc3\xa9aZ09'))


@settings(max_examples=3000)
@given(st.lists(EDGY, min_size=1, max_size=16).map(bytes))
# Found by the search once: a quad of padding after a complete one, which binascii accepts.
@example(b"AAAA====")
@example(b"AAAA=")
def test_agrees_with_a_strict_decoder(data: bytes) -> None:
    assert is_base64(data) == strictly_decodes(data)


@given(st.binary(max_size=300))
def test_every_encoding_is_accepted(raw: bytes) -> None:
    encoded = base64.b64encode(raw)
    assert is_base64(encoded) == bool(raw)
    assert Base64Text.encode(raw).ascii == encoded
    if raw:
        assert binascii.a2b_base64(Base64Text(encoded).ascii) == raw


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"QUJD\n",
        b"QU=D",
        b"QUJDR",
        b"QUJD====",
        b"QQ=A",
        b"=QUJ",
        b"QUJ-",
        b"QUJ_",
        b"QUJ\x00",
    ],
)
def test_refuses(data: bytes) -> None:
    assert not is_base64(data)
    with pytest.raises(ValueError, match="not base64"):
        Base64Text(data)


def test_from_str_refuses_non_ascii_and_keeps_the_text() -> None:
    with pytest.raises(ValueError, match="not base64"):
        Base64Text.from_str("QUJ\u00e9")
    text = Base64Text.from_str("QUJDRA==")
    assert str(text) == "QUJDRA=="
    assert len(text) == 8
    assert text == Base64Text(b"QUJDRA==")
    assert "QUJD" not in repr(text)
