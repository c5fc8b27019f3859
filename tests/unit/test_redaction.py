"""Secrets and credential shapes never pass through a relayed message or an error (issue 12)."""

from __future__ import annotations

import pytest

from imagegw.errors import InvalidRequest, relayed, render
from imagegw.redaction import REDACTED, remember, remember_config, scrub


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def-ghi_jkl012345",
        "authorization=Basic dXNlcjpwYXNzd29yZA==",
        "Incorrect API key provided: sk-proj-AbCdEf0123456789xyz",
        "key rk_live_0123456789abcdef was revoked",
        "AWS said AKIAIOSFODNN7EXAMPLE is unknown",
        "session ASIAABCDEFGHIJKLMNOP expired",
        "x-goog-api-key: AIzaSyA0123456789abcdefghijklmnopqrstu",
        "x-api-key: 9f8e7d6c5b4a39281706",
        '{"api_key": "plain-secret-value-1234"}',
        "token=0123456789abcdef0123",
        "access ya29.a0AfH6SMBx-0123456789_abc",
        "jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
        "url /v1/images/files/k.png?expires=1&signature=0123456789abcdef0123456789abcdef",
        "https://b.s3.amazonaws.com/k?X-Amz-Signature=abcdef0123456789&X-Amz-Credential=AKIA",
        "password: hunter2hunter2",
    ],
)
def test_credential_shapes_are_redacted(text: str) -> None:
    cleaned = scrub(text)
    assert REDACTED in cleaned
    for secret in (
        "abc.def-ghi_jkl012345",
        "dXNlcjpwYXNzd29yZA",
        "AbCdEf0123456789xyz",
        "0123456789abcdef",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAABCDEFGHIJKLMNOP",
        "AIzaSyA0123456789",
        "9f8e7d6c5b4a39281706",
        "plain-secret-value",
        "a0AfH6SMBx",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "hunter2hunter2",
    ):
        assert secret not in cleaned, (text, cleaned)


def test_ordinary_upstream_explanations_are_left_alone() -> None:
    for text in (
        "Invalid size '1280x720'. Supported sizes are 1024x1024, 1536x1024 and 1024x1536.",
        "Image generation failed: the prompt is too long (max_tokens: 4096).",
        "Support codes: 61493863",
        "The model gpt-image-1.5 does not exist or you do not have access to it.",
    ):
        assert scrub(text) == text


def test_remembered_secrets_are_removed_whatever_their_shape() -> None:
    remember("plainword-secret-42", None, "short")
    remember_config({"google": {"service_account": {"private_key_id": "idvalue123456789"}}})
    remember_config({"base_url": "https://example.test/v1", "organization": "org-public-1"})
    text = "echo plainword-secret-42 and idvalue123456789 via https://example.test/v1 short"
    assert scrub(text) == f"echo {REDACTED} and {REDACTED} via https://example.test/v1 short"


def test_a_relayed_message_is_scrubbed_cut_and_renderable() -> None:
    long_text = "Bearer sk-0123456789abcdefgh " + "x" * 5000 + "\ud800"
    message = relayed(long_text)
    assert message is not None
    assert "sk-0123456789" not in message
    assert len(message) <= 1001
    assert relayed("") is None
    assert relayed(None) is None
    assert relayed(42) is None


def test_every_gateway_error_message_is_scrubbed() -> None:
    error = InvalidRequest("The upstream said: Authorization: Bearer sk-leaked-0123456789abc")
    assert b"sk-leaked" not in render(error)
    assert "sk-leaked" not in str(error)
