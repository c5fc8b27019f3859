"""What S3 checks before it serves a presigned GET: the SigV4 query signature and the expiry.

moto serves presigned URLs without checking either (a tampered or long-expired URL still gets the
object), so tests that need "a URL past its lifetime is refused" verify here, following AWS's
SigV4 rules for query-string authentication independently of botocore's signer:

    canonical request = GET \\n <path as sent> \\n <sorted, URI-encoded query without the
        signature> \\n <signed headers, "name:value\\n" each> \\n <signed header names> \\n
        UNSIGNED-PAYLOAD
    string to sign    = AWS4-HMAC-SHA256 \\n <X-Amz-Date> \\n <scope> \\n hex(sha256(canonical))
    signing key       = HMAC chain over "AWS4"+secret, date, region, "s3", "aws4_request"

A URL is refused when its signature does not verify with the secret of its access key, when it
is not yet valid, or when ``now >= X-Amz-Date + X-Amz-Expires``.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_EXPIRES = 7 * 24 * 3600


@dataclass(frozen=True)
class Presigned:
    """The signing parameters a presigned URL carries."""

    access_key: str
    date: str  # YYYYMMDD
    region: str
    service: str
    amz_date: str  # YYYYMMDDTHHMMSSZ
    expires: int
    signed_headers: tuple[str, ...]
    signature: str
    security_token: str | None

    @property
    def signed_at(self) -> int:
        return calendar.timegm(time.strptime(self.amz_date, "%Y%m%dT%H%M%SZ"))

    @property
    def expires_at(self) -> int:
        """The first second at which S3 refuses the URL."""
        return self.signed_at + self.expires


def parameters(url: str) -> Presigned:
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    algorithm = query.get("X-Amz-Algorithm")
    if algorithm != ALGORITHM:
        raise ValueError(f"not a SigV4 presigned URL (X-Amz-Algorithm={algorithm})")
    access_key, date, region, service, terminator = query["X-Amz-Credential"].split("/")
    if terminator != "aws4_request":
        raise ValueError("malformed X-Amz-Credential")
    return Presigned(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        amz_date=query["X-Amz-Date"],
        expires=int(query["X-Amz-Expires"]),
        signed_headers=tuple(query["X-Amz-SignedHeaders"].split(";")),
        signature=query["X-Amz-Signature"],
        security_token=query.get("X-Amz-Security-Token"),
    )


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def expected_signature(
    secret_key: str, signed: Presigned, *, path: str, query: str, headers: Mapping[str, str]
) -> str:
    pairs = [
        (_encode(name), _encode(value))
        for name, value in parse_qsl(query, keep_blank_values=True)
        if name != "X-Amz-Signature"
    ]
    canonical_query = "&".join(f"{name}={value}" for name, value in sorted(pairs))
    lowered = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in signed.signed_headers)
    canonical_request = "\n".join(
        [
            "GET",
            path,
            canonical_query,
            canonical_headers,
            ";".join(signed.signed_headers),
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = f"{signed.date}/{signed.region}/{signed.service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, signed.amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + secret_key).encode("utf-8"), signed.date)
    for part in (signed.region, signed.service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def refusal(
    target: str, headers: Mapping[str, str], secrets: Mapping[str, str], now: float
) -> str | None:
    """Why S3 would refuse this GET (``target`` is the request line's path and query), or None.

    ``secrets`` maps access key ids to secret keys; ``headers`` are the request's headers.
    """
    path, _, query = target.partition("?")
    try:
        signed = parameters(target)
    except (KeyError, ValueError) as exc:
        return f"AccessDenied: not a valid presigned request ({exc})"
    if signed.service != "s3" or not signed.amz_date.startswith(signed.date):
        return "AuthorizationQueryParametersError: inconsistent credential scope"
    if not 1 <= signed.expires <= MAX_EXPIRES:
        return "AuthorizationQueryParametersError: X-Amz-Expires out of range"
    if "host" not in signed.signed_headers or any(
        name not in {key.lower() for key in headers} for name in signed.signed_headers
    ):
        return "AccessDenied: a signed header is missing"
    secret_key = secrets.get(signed.access_key)
    if secret_key is None:
        return "InvalidAccessKeyId"
    expected = expected_signature(secret_key, signed, path=path, query=query, headers=headers)
    if not hmac.compare_digest(expected, signed.signature):
        return "SignatureDoesNotMatch"
    if now < signed.signed_at - 900:
        return "AccessDenied: Request is not yet valid"
    if now >= signed.expires_at:
        return "AccessDenied: Request has expired"
    return None


# ------------------------------------------------------------------ Authorization-header requests
#
# What AWS checks on a request signed in its ``Authorization`` header (bedrock-runtime and every
# other non-S3 service), again written from AWS's SigV4 rules rather than botocore's signer:
#
#     Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request,
#                    SignedHeaders=<names>, Signature=<hex>
#     canonical request = METHOD \n <each path segment URI-encoded again (the path as sent is
#         already encoded once)> \n <sorted query> \n <signed headers> \n <names> \n
#         hex(sha256(body as received))
#
# The body's hash is computed from the bytes that arrived, so a body changed after signing fails.

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([^/,]+)/([^/,]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)


@dataclass(frozen=True)
class HeaderSignature:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def header_signature(authorization: str) -> HeaderSignature | None:
    match = _AUTHORIZATION.match(authorization)
    if match is None:
        return None
    access_key, date, region, service, names, signature = match.groups()
    return HeaderSignature(access_key, date, region, service, tuple(names.split(";")), signature)


def header_refusal(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
    *,
    region: str,
    service: str,
    now: float,
) -> str | None:
    """Why AWS would refuse this header-signed request, or None when it verifies.

    ``headers`` are the request's headers (any case); ``secrets`` maps access keys to secrets.
    """
    lowered = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    signed = header_signature(lowered.get("authorization", ""))
    if signed is None:
        return "MissingAuthenticationToken: no SigV4 Authorization header"
    if signed.region != region or signed.service != service:
        return f"SignatureDoesNotMatch: scope {signed.region}/{signed.service}"
    amz_date = lowered.get("x-amz-date", "")
    if not amz_date.startswith(signed.date):
        return "IncompleteSignature: X-Amz-Date does not match the credential scope"
    if "host" not in signed.signed_headers or "x-amz-date" not in signed.signed_headers:
        return "SignatureDoesNotMatch: host and x-amz-date must be signed"
    if any(name not in lowered for name in signed.signed_headers):
        return "SignatureDoesNotMatch: a signed header is missing"
    secret_key = secrets.get(signed.access_key)
    if secret_key is None:
        return "UnrecognizedClientException: The security token included in the request is invalid."
    path, _, query = target.partition("?")
    pairs = sorted(
        (_encode(name), _encode(value)) for name, value in parse_qsl(query, keep_blank_values=True)
    )
    canonical_request = "\n".join(
        [
            method,
            quote(path, safe="/~"),
            "&".join(f"{name}={value}" for name, value in pairs),
            "".join(f"{name}:{lowered[name]}\n" for name in signed.signed_headers),
            ";".join(signed.signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{signed.date}/{signed.region}/{signed.service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + secret_key).encode("utf-8"), signed.date)
    for part in (signed.region, signed.service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signed.signature):
        return "InvalidSignatureException: The request signature we calculated does not match"
    signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    if abs(now - signed_at) > 300:
        return "InvalidSignatureException: Signature expired"
    return None
