"""Every provider against every hostile upstream case (tests/support/hostile_upstream.py).

Wrong lengths, bodies that stop or never end, JSON nested 100,000 deep, gigabytes declared,
gzip bombs, slow drips: each is its documented 4xx/5xx in OpenAI's envelope (502
``upstream_bad_response`` for an answer no upstream should give, 504 for one that never ends in
time), never a 500 and never memory in proportion to what the upstream declares (issue 12).
New providers add a ``ProviderTarget`` to ``PROVIDER_TARGETS`` (see the support module).
"""

from __future__ import annotations

import json

import httpx
import pytest
from botocore.credentials import Credentials

from imagegw.generation.input_images import InputLimits, inspect_image
from imagegw.providers.base import ImageProvider
from imagegw.providers.bedrock.provider import BedrockProvider
from imagegw.providers.bfl.provider import BflProvider
from imagegw.providers.bfl.task import Endpoint
from imagegw.providers.google.provider import GeminiApi, GoogleProvider, Vertex
from imagegw.providers.inputs import InputImage
from imagegw.providers.openai import OpenAIProvider
from imagegw.providers.stability.provider import StabilityProvider

from support.edit_images import alpha_mask, gradient
from support.hostile_upstream import (
    ABUSES,
    Abuse,
    HostileUpstream,
    ProviderTarget,
    catalog_request,
    echo_credentials,
    outcome,
    run_abuse,
)

OPENAI_KEY = "sk-hostile-test-0123456789abcdef"
GEMINI_KEY = "AIzaHostileTestKey0123456789abcdefghij"
VERTEX_TOKEN = "ya29.hostile-test-token-0123456789abcdef"
BFL_KEY = "bfl-hostile-test-key-0123456789abcdef"
STABILITY_KEY = "sk-stability-hostile-0123456789abcdef"
# Bedrock's calls carry the access key id (in the signature's scope) and a signature made with
# the secret, which is never sent.
AWS_ACCESS_KEY = "AKIAHOSTILETEST00042"
AWS_SECRET_KEY = "hostile-test-secret-key-0123456789abcdefgh"


class FixedToken:
    async def token(self) -> str:
        return VERTEX_TOKEN


def _openai(origin: str, http: httpx.AsyncClient) -> ImageProvider:
    return OpenAIProvider(http, api_key=OPENAI_KEY, base_url=origin + "/v1")


def _imagen(origin: str, http: httpx.AsyncClient) -> ImageProvider:
    vertex = Vertex(
        project="hostile-project",
        location="us-central1",
        gemini_location="global",
        tokens=FixedToken(),
        base_url=origin,
    )
    return GoogleProvider(http, vertex=vertex, gemini_api=None)


def _gemini(origin: str, http: httpx.AsyncClient) -> ImageProvider:
    return GoogleProvider(http, vertex=None, gemini_api=GeminiApi(GEMINI_KEY, origin))


def _bfl(origin: str, http: httpx.AsyncClient) -> ImageProvider:
    return BflProvider(http, Endpoint(httpx.URL(origin), BFL_KEY))


def _bfl_error(message: str) -> bytes:
    return json.dumps({"detail": message}).encode()


def _stability(origin: str, http: httpx.AsyncClient) -> ImageProvider:
    return StabilityProvider(http, api_key=STABILITY_KEY, base_url=origin)


_INPUT_LIMITS = InputLimits(max_bytes=10**7, max_total_bytes=10**8, max_pixels=10**8)
_MASK = alpha_mask(64, 48, change=(0, 0, 32, 48))


def _input(data: bytes) -> InputImage:
    return inspect_image(data, param="image", limits=_INPUT_LIMITS)


def _stability_error(message: str) -> bytes:
    return json.dumps({"name": "bad_request", "errors": [message]}).encode()


def _bedrock(origin: str, http: httpx.AsyncClient) -> ImageProvider:
    credentials = Credentials(AWS_ACCESS_KEY, AWS_SECRET_KEY)
    return BedrockProvider(http, "us-west-2", endpoint=origin, credentials=credentials)


def _bedrock_error(message: str) -> bytes:
    # Bedrock names the exception in x-amzn-ErrorType; without it, in the body's __type.
    return json.dumps({"__type": "ValidationException", "message": message}).encode()


PROVIDER_TARGETS: list[ProviderTarget] = [
    ProviderTarget(
        "openai",
        _openai,
        lambda: catalog_request("openai/gpt-image-1.5"),
        secrets=(OPENAI_KEY,),
    ),
    ProviderTarget(
        "google-imagen-vertex",
        _imagen,
        lambda: catalog_request("google/imagen-4.0-fast"),
        secrets=(VERTEX_TOKEN,),
    ),
    ProviderTarget(
        "google-gemini-api",
        _gemini,
        lambda: catalog_request("google/gemini-2.5-flash-image"),
        secrets=(GEMINI_KEY,),
    ),
    ProviderTarget(
        "bfl",
        _bfl,
        lambda: catalog_request("bfl/flux-2-pro"),
        secrets=(BFL_KEY,),
        error_body=_bfl_error,
    ),
    ProviderTarget(
        "stability",
        _stability,
        lambda: catalog_request("stability/stable-image-core"),
        secrets=(STABILITY_KEY,),
        error_body=_stability_error,
    ),
    ProviderTarget(
        "bedrock",
        _bedrock,
        lambda: catalog_request("bedrock/stable-image-core"),
        secrets=(AWS_ACCESS_KEY,),
        error_body=_bedrock_error,
    ),
    # The inpainting service: another endpoint, a multipart body with the image and the mask.
    ProviderTarget(
        "stability-inpaint",
        _stability,
        lambda: catalog_request(
            "stability/stable-image-inpaint", images=(_input(gradient()),), mask=_input(_MASK)
        ),
        secrets=(STABILITY_KEY,),
        error_body=_stability_error,
    ),
    ProviderTarget(
        "bedrock-inpaint",
        _bedrock,
        lambda: catalog_request(
            "bedrock/stable-image-inpaint", images=(_input(gradient()),), mask=_input(_MASK)
        ),
        secrets=(AWS_ACCESS_KEY,),
        error_body=_bedrock_error,
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize("abuse", ABUSES, ids=[abuse.name for abuse in ABUSES])
@pytest.mark.parametrize("target", PROVIDER_TARGETS, ids=[t.name for t in PROVIDER_TARGETS])
async def test_a_hostile_upstream_is_a_clean_error(target: ProviderTarget, abuse: Abuse) -> None:
    await run_abuse(target, abuse)


@pytest.mark.anyio
@pytest.mark.parametrize("target", PROVIDER_TARGETS, ids=[t.name for t in PROVIDER_TARGETS])
async def test_an_error_echoing_the_request_never_relays_a_credential(
    target: ProviderTarget,
) -> None:
    with HostileUpstream(target.error_body) as upstream:
        upstream.abuse = echo_credentials(400)
        error = await outcome(target, upstream)
    assert upstream.requests, "the provider never called the upstream"
    sent = upstream.requests[0].headers
    assert any(secret in value for secret in target.secrets for value in sent.values())
    assert error.status == 400
    for secret in target.secrets:
        assert secret not in error.message
        assert secret[:12] not in error.message
    assert "[redacted]" in error.message
    # The rest of the upstream's explanation still reaches the caller.
    assert "Bad request" in error.message
