"""The fake Bedrock's SigV4 check (support.sigv4.header_refusal) against botocore's signer.

The check is written from AWS's rules, not from botocore; here it must accept what botocore signs
and refuse the same request once anything signed has changed, so the fake cannot pass a request
AWS would refuse.
"""

from __future__ import annotations

import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from support.sigv4 import header_refusal

SECRETS = {"AKIAEXAMPLE": "secret-example"}
BODY = b'{"prompt": "a fox", "aspect_ratio": "1:1"}'


def _signed(
    body: bytes = BODY, path: str = "/model/stability.sd3-5-large-v1%3A0/invoke"
) -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url=f"https://bedrock-runtime.us-west-2.amazonaws.com{path}",
        data=body,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    SigV4Auth(Credentials("AKIAEXAMPLE", "secret-example"), "bedrock", "us-west-2").add_auth(
        request
    )
    headers = dict(request.headers.items())
    headers["Host"] = "bedrock-runtime.us-west-2.amazonaws.com"
    return headers


def _refusal(
    headers: dict[str, str], *, body: bytes = BODY, target: str | None = None
) -> str | None:
    return header_refusal(
        "POST",
        target or "/model/stability.sd3-5-large-v1%3A0/invoke",
        headers,
        body,
        SECRETS,
        region="us-west-2",
        service="bedrock",
        now=time.time(),
    )


def test_botocores_signature_verifies() -> None:
    assert _refusal(_signed()) is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"body": BODY + b" "}, "InvalidSignatureException"),
        (
            {"target": "/model/stability.stable-image-ultra-v1%3A1/invoke"},
            "InvalidSignatureException",
        ),
    ],
)
def test_a_changed_body_or_path_is_refused(change: dict[str, object], expected: str) -> None:
    refusal = _refusal(_signed(), **change)  # type: ignore[arg-type]
    assert refusal is not None
    assert refusal.startswith(expected)


def test_a_changed_signed_header_or_unknown_key_or_other_region_is_refused() -> None:
    headers = _signed()
    assert (_refusal({**headers, "Content-Type": "text/plain"}) or "").startswith(
        "InvalidSignature"
    )
    unknown = headers["Authorization"].replace("AKIAEXAMPLE", "AKIAOTHER00")
    assert (_refusal({**headers, "Authorization": unknown}) or "").startswith("Unrecognized")
    other = headers["Authorization"].replace("us-west-2", "us-east-1")
    assert (_refusal({**headers, "Authorization": other}) or "").startswith("SignatureDoesNotMatch")
    assert (_refusal({"Host": headers["Host"]}) or "").startswith("MissingAuthenticationToken")
