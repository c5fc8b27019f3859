"""The bedrock provider through real boto3 against the fake Bedrock runtime (SigV4 checked).

boto3 finds the fake through ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, as a private endpoint would be
configured; every request must carry a signature that verifies over the body as received.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegw.errors import (
    ContentPolicyViolation,
    GatewayError,
    InvalidRequest,
    InvalidValue,
    ModelUnavailable,
    ProviderNotConfigured,
    RateLimited,
    ServiceUnavailable,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from imagegw.providers import build_provider
from imagegw.providers.base import answer_limit
from imagegw.providers.bedrock.provider import BedrockProvider
from imagegw.providers.progress import Progress, watching
from imagegw.settings import Settings
from providers.conftest import MakeRequest

from support import fake_bedrock
from support.fake_bedrock import (
    LADDER,
    AwsError,
    FakeBedrock,
    Filtered,
    Generated,
    InferenceError,
    access_denied,
    throttled,
    validation,
)
from support.scripted_http import Delay, Hangup, Raw, Truncated

ULTRA = "bedrock/stable-image-ultra"
SD35 = "bedrock/sd3.5-large"
ULTRA_PATH = "/model/stability.stable-image-ultra-v1%3A1/invoke"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock() as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture(autouse=True)
def _pointed_at_the_fake(bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch) -> None:
    bedrock.reset()
    for name in fake_bedrock.CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in fake_bedrock.environment(bedrock).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def provider(http: httpx.AsyncClient) -> AsyncIterator[BedrockProvider]:
    built = BedrockProvider(http, "us-west-2", connect_timeout_seconds=2)
    yield built
    await built.aclose()


def _picture(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


# ------------------------------------------------------------------------------- the request


@pytest.mark.anyio
async def test_the_request_is_stabilitys_envelope_signed_for_bedrock(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    result = await provider.generate(
        make_request(
            ULTRA,
            size="1792x1024",
            seed=42,
            negative_prompt="fog",
            output_format="jpeg",
        )
    )
    assert bedrock.refusals == []
    (sent,) = bedrock.calls()
    assert sent.method == "POST"
    assert sent.path == ULTRA_PATH
    assert (sent.header("authorization") or "").startswith("AWS4-HMAC-SHA256 Credential=AKIA")
    assert "/us-west-2/bedrock/aws4_request" in (sent.header("authorization") or "")
    assert sent.header("content-type") == "application/json"
    assert sent.header("accept") == "application/json"
    assert sent.json == {
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "16:9",
        "negative_prompt": "fog",
        "seed": 42,
        "output_format": "jpeg",
    }
    (image,) = result.images
    assert image.media_type == "image/jpeg"
    assert _picture(image.b64()).size == (1344, 768)
    assert (result.size, result.output_format) == ("1344x768", "jpeg")
    assert result.extra == {"aspect_ratio": "16:9", "seeds": [42]}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("seed", "seeds"),
    [(42, [42, 43, 44]), (4_294_967_294, [4_294_967_294, 1, 2]), (None, [1234567] * 3)],
    ids=["seed", "wrapping", "none"],
)
async def test_n_images_with_a_seed_are_variations_not_copies(
    bedrock: FakeBedrock,
    provider: BedrockProvider,
    make_request: MakeRequest,
    seed: int | None,
    seeds: list[int],
) -> None:
    result = await provider.generate(make_request(ULTRA, n=3, seed=seed))
    sent = [call.json.get("seed") for call in bedrock.calls()]
    assert sorted(sent, key=str) == sorted([seed] * 3 if seed is None else seeds, key=str)
    assert result.extra["seeds"] == seeds
    assert len(result.images) == 3


@pytest.mark.anyio
async def test_only_the_prompt_and_ratio_are_sent_when_nothing_else_is_asked(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    result = await provider.generate(make_request(SD35))
    (sent,) = bedrock.calls()
    assert sent.path == "/model/stability.sd3-5-large-v1%3A0/invoke"
    assert sent.json == {"prompt": "a lighthouse at dusk", "aspect_ratio": "1:1"}
    assert (result.size, result.output_format) == ("1024x1024", "png")


@pytest.mark.anyio
@pytest.mark.parametrize("ratio", list(LADDER))
async def test_each_ladder_size_is_sent_as_its_ratio(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest, ratio: str
) -> None:
    result = await provider.generate(make_request(ULTRA, size=LADDER[ratio]))
    assert bedrock.calls()[0].json["aspect_ratio"] == ratio
    assert result.size == LADDER[ratio]


@pytest.mark.anyio
async def test_the_size_reported_is_the_one_that_came_back(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    bedrock.default = Generated(size="1536x1024")  # not the ladder's 1216x832
    result = await provider.generate(make_request(ULTRA, size="1536x1024"))
    assert bedrock.calls()[0].json["aspect_ratio"] == "3:2"
    assert result.size == "1536x1024"


@pytest.mark.anyio
async def test_a_size_without_a_ratio_is_refused_before_any_call(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    with pytest.raises(InvalidValue) as caught:
        await provider.generate(make_request(ULTRA, size="512x512"))
    assert caught.value.param == "size"
    assert "'512x512'" in caught.value.message
    assert "'1344x768'" in caught.value.message
    assert bedrock.requests == []


# ------------------------------------------------------------------------------- n and filters


@pytest.mark.anyio
async def test_n_is_n_calls_at_most_four_at_a_time(
    bedrock: FakeBedrock, make_request: MakeRequest, http: httpx.AsyncClient
) -> None:
    provider = BedrockProvider(http, "us-west-2", max_parallel_calls=2)
    bedrock.default = Delay(0.2, Generated())
    try:
        result = await provider.generate(make_request(ULTRA, n=4))
    finally:
        await provider.aclose()
    assert len(bedrock.calls()) == 4
    assert len(result.images) == 4
    assert 1 <= bedrock.max_in_flight <= 2
    assert (result.filtered, result.failed) == (0, 0)


@pytest.mark.anyio
async def test_each_image_that_arrives_is_reported_as_progress(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    reports: list[Progress] = []
    bedrock.enqueue(Generated(), Filtered(), Generated())
    with watching(reports.append):
        result = await provider.generate(make_request(ULTRA, n=3))
    assert len(result.images) == 2
    assert reports == [Progress(images_done=1), Progress(images_done=2)]


@pytest.mark.anyio
async def test_a_filtered_image_is_withheld_and_counted(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    bedrock.enqueue(Filtered("Filter reason: output image"))
    result = await provider.generate(make_request(ULTRA, n=3))
    assert len(result.images) == 2
    assert (result.filtered, result.failed) == (1, 0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reason", ["Filter reason: prompt", "Filter reason: output image", "Filter reason: input image"]
)
async def test_every_image_filtered_is_a_content_policy_violation_naming_the_filter(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest, reason: str
) -> None:
    bedrock.default = Filtered(reason)
    with pytest.raises(ContentPolicyViolation) as caught:
        await provider.generate(make_request(ULTRA, n=2))
    assert caught.value.code == "content_policy_violation"
    assert reason in caught.value.message
    assert "2 of 2 images" in caught.value.message


@pytest.mark.anyio
async def test_a_failed_call_of_a_fan_out_is_reported_and_the_rest_delivered(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    bedrock.enqueue(AwsError(500, "InternalServerException", "boom"))
    result = await provider.generate(make_request(ULTRA, n=3))
    assert len(result.images) == 2
    assert (result.filtered, result.failed) == (0, 1)
    assert len(bedrock.requests) == 3  # the failed call was not repeated


@pytest.mark.anyio
async def test_inference_error_is_an_upstream_error(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    bedrock.default = InferenceError()
    with pytest.raises(UpstreamError) as caught:
        await provider.generate(make_request(ULTRA))
    assert "Inference error" in caught.value.message


# ------------------------------------------------------------------------------- errors


def _error_cases() -> list[Any]:
    return [
        pytest.param(throttled(), RateLimited, "rate_limit_exceeded", id="throttling"),
        pytest.param(
            AwsError(429, "ModelNotReadyException", "Model is not ready"),
            RateLimited,
            "model_not_ready",
            id="model-not-ready",
        ),
        pytest.param(
            AwsError(400, "ServiceQuotaExceededException", "quota"),
            RateLimited,
            "rate_limit_exceeded",
            id="quota",
        ),
        pytest.param(
            validation("Malformed input request: #/prompt: too long, please reformat your input"),
            InvalidRequest,
            "invalid_request",
            id="validation",
        ),
        pytest.param(
            validation("invalid_prompts: One or more prompts contains filtered words."),
            ContentPolicyViolation,
            "content_policy_violation",
            id="filtered-words",
        ),
        pytest.param(
            access_denied(), ProviderNotConfigured, "bedrock_model_access_denied", id="access"
        ),
        pytest.param(
            AwsError(404, "ResourceNotFoundException", "Could not resolve the foundation model"),
            ModelUnavailable,
            "model_unavailable",
            id="not-found",
        ),
        pytest.param(
            AwsError(408, "ModelTimeoutException", "timed out"),
            UpstreamTimeout,
            "upstream_timeout",
            id="model-timeout",
        ),
        pytest.param(
            AwsError(424, "ModelErrorException", "model error"),
            UpstreamError,
            "upstream_error",
            id="model-error",
        ),
        pytest.param(
            AwsError(500, "InternalServerException", "SECRET-UPSTREAM-DETAIL"),
            UpstreamError,
            "upstream_error",
            id="internal",
        ),
        pytest.param(
            AwsError(503, "ServiceUnavailableException", "unavailable"),
            ServiceUnavailable,
            "upstream_unavailable",
            id="unavailable",
        ),
        pytest.param(
            AwsError(403, "UnrecognizedClientException", "The security token is invalid"),
            UpstreamAuthFailed,
            "upstream_auth_failed",
            id="credentials",
        ),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(("reply", "error", "code"), _error_cases())
async def test_bedrock_exceptions_map_by_their_code_and_are_sent_once(
    bedrock: FakeBedrock,
    provider: BedrockProvider,
    make_request: MakeRequest,
    reply: AwsError,
    error: type[GatewayError],
    code: str,
) -> None:
    bedrock.default = reply
    with pytest.raises(error) as caught:
        await provider.generate(make_request(ULTRA))
    assert type(caught.value) is error
    assert caught.value.code == code
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.message
    # botocore's own retries are off: the gateway's retry policy alone decides.
    assert len(bedrock.requests) == 1


@pytest.mark.anyio
async def test_access_denied_says_model_access_is_not_enabled(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    bedrock.default = access_denied()
    with pytest.raises(ProviderNotConfigured) as caught:
        await provider.generate(make_request(ULTRA))
    assert "Model access" in caught.value.message
    assert "stability.stable-image-ultra-v1:1" in caught.value.message
    assert "us-west-2" in caught.value.message


@pytest.mark.anyio
async def test_a_throttled_call_says_when_to_come_back(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    bedrock.default = throttled()
    with pytest.raises(RateLimited) as caught:
        await provider.generate(make_request(ULTRA))
    assert caught.value.should_retry
    assert caught.value.headers["retry-after"] == "5"


@pytest.mark.anyio
async def test_a_wrong_secret_fails_the_signature_check_as_the_gateways_problem(
    bedrock: FakeBedrock,
    provider: BedrockProvider,
    make_request: MakeRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(UpstreamAuthFailed):
        await provider.generate(make_request(ULTRA))
    assert bedrock.calls() == []
    assert bedrock.refusals[0].startswith("InvalidSignatureException")


@pytest.mark.anyio
async def test_no_credentials_is_a_configuration_error(
    bedrock: FakeBedrock,
    provider: BedrockProvider,
    make_request: MakeRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ProviderNotConfigured) as caught:
        await provider.generate(make_request(ULTRA))
    assert "AWS credentials" in caught.value.message
    assert bedrock.requests == []


@pytest.mark.anyio
async def test_temporary_credentials_send_and_sign_their_session_token(
    bedrock: FakeBedrock,
    http: httpx.AsyncClient,
    make_request: MakeRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLESESSIONTOKEN")
    provider = BedrockProvider(http, "us-west-2")
    await provider.generate(make_request(ULTRA))
    (sent,) = bedrock.calls()
    assert sent.header("x-amz-security-token") == "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
    assert "x-amz-security-token" in (sent.header("authorization") or "")


@pytest.mark.anyio
async def test_an_endpoint_that_is_not_a_url_is_a_configuration_error(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "ftp://bedrock.example")
    with pytest.raises(ProviderNotConfigured) as caught:
        BedrockProvider(http, "us-west-2")
    assert "AWS_ENDPOINT_URL_BEDROCK_RUNTIME" in caught.value.message


@pytest.mark.parametrize(
    ("status", "headers", "body", "error"),
    [
        pytest.param(
            429,
            {},
            b'{"__type": "com.amazon.bedrock#ThrottlingException", "message": "slow down"}',
            RateLimited,
            id="type-in-the-body",
        ),
        pytest.param(
            400,
            {"x-amzn-errortype": "ValidationException:http://internal.amazon.com/"},
            b'{"Message": "#/seed: expected an integer"}',
            InvalidRequest,
            id="type-in-the-header",
        ),
        pytest.param(
            400,
            {"x-amzn-errortype": "Validation Exception\r\n<script>"},
            b"<html>no</html>",
            UpstreamError,
            id="a-code-that-is-not-an-identifier",
        ),
        pytest.param(
            400,
            {},
            b'{"__type": ["ValidationException"], "message": 7}',
            UpstreamError,
            id="fields-of-the-wrong-type",
        ),
        pytest.param(
            400,
            {},
            b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            UpstreamBadResponse,
            id="nested-too-deeply",
        ),
    ],
)
def test_an_error_answer_is_read_as_botocore_reads_it_and_totally(
    status: int, headers: dict[str, str], body: bytes, error: type[GatewayError]
) -> None:
    from imagegw.providers.bedrock.errors import error_of_answer

    found: GatewayError
    try:
        found = error_of_answer(
            status,
            body,
            httpx.Headers(headers),
            model="stability.sd3-5-large-v1:0",
            region="us-west-2",
        )
    except GatewayError as raised:  # a body no upstream should send is raised, not returned
        found = raised
    assert type(found) is error
    if error is InvalidRequest:
        assert "#/seed: expected an integer" in found.message


# ------------------------------------------------------------------------------- hostile answers


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Raw(b"<html>not json</html>"), id="not-json"),
        pytest.param(Raw(b"[1, 2, 3]"), id="not-an-object"),
        pytest.param(Raw(b'{"images": ["not base64!"], "finish_reasons": [null]}'), id="not-b64"),
        pytest.param(Raw(b'{"images": ["QUJDRA=="], "finish_reasons": [null]}'), id="not-an-image"),
        pytest.param(Raw(b'{"images": [], "finish_reasons": [null]}'), id="no-image"),
        pytest.param(Raw(b'{"images": [1], "finish_reasons": [null]}'), id="image-not-a-string"),
        pytest.param(Raw(b"[" * 100_000 + b"]" * 100_000), id="deeply-nested"),
        pytest.param(
            Truncated(b'{"seeds": [1], "finish_reasons": [null], "images": ["iVBO'), id="truncated"
        ),
    ],
)
async def test_a_malformed_answer_is_a_bad_response(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest, reply: Any
) -> None:
    bedrock.default = reply
    with pytest.raises(UpstreamBadResponse):
        await provider.generate(make_request(ULTRA))
    assert len(bedrock.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("status", [200, 400])
async def test_a_huge_answer_is_refused_without_being_kept(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest, status: int
) -> None:
    """The cap of every upstream (answer_limit, the operator's setting here), errors too."""
    bedrock.default = Raw(json.dumps({"images": ["A" * 200_000]}).encode(), status=status)
    with pytest.raises(UpstreamBadResponse) as caught:
        await provider.generate(make_request(ULTRA, max_answer_bytes=64 * 1024))
    assert "larger than 65536 bytes" in caught.value.message


@pytest.mark.anyio
async def test_the_default_cap_is_one_image_of_the_model(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    request = make_request(ULTRA, n=4)
    cap = answer_limit(request, images=1)
    assert cap < 16 * 1024 * 1024
    bedrock.default = Raw(b'{"images": ["' + b"A" * cap + b'"]}')
    with pytest.raises(UpstreamBadResponse) as caught:
        await provider.generate(make_request(ULTRA))
    assert f"larger than {cap} bytes" in caught.value.message


@pytest.mark.anyio
async def test_an_error_page_instead_of_an_aws_error_is_an_upstream_error(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    bedrock.default = Raw(b"<html>502 Bad Gateway</html>", status=502, content_type="text/html")
    with pytest.raises(UpstreamError) as caught:
        await provider.generate(make_request(ULTRA))
    assert caught.value.code == "upstream_error"
    assert len(bedrock.requests) == 1


# ------------------------------------------------------------------------------- time and wire


@pytest.mark.anyio
async def test_the_deadline_bounds_the_call_and_it_is_not_resent(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    bedrock.default = Delay(3, Generated())
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout) as caught:
        await provider.generate(make_request(ULTRA, timeout_seconds=0.5))
    assert loop.time() - started < 2.5  # answered at the deadline, not at the upstream's pace
    assert "0.5 seconds" in caught.value.message
    assert len(bedrock.requests) == 1


@pytest.mark.anyio
async def test_a_fan_out_at_the_deadline_delivers_what_arrived(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    bedrock.enqueue(Generated(), Delay(3, Generated()))
    result = await provider.generate(make_request(ULTRA, n=2, timeout_seconds=1.0))
    assert len(result.images) == 1
    assert (result.filtered, result.failed) == (0, 1)


@pytest.mark.anyio
async def test_a_hangup_after_sending_is_ambiguous_and_not_resent(
    bedrock: FakeBedrock, provider: BedrockProvider, make_request: MakeRequest
) -> None:
    bedrock.default = Hangup()
    with pytest.raises(UpstreamError) as caught:
        await provider.generate(make_request(ULTRA))
    assert not caught.value.should_retry
    assert len(bedrock.requests) == 1


@pytest.mark.anyio
async def test_nothing_listening_is_unreachable_and_safe_to_retry(
    http: httpx.AsyncClient,
    make_request: MakeRequest,
    monkeypatch: pytest.MonkeyPatch,
    closed_port: int,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", f"http://127.0.0.1:{closed_port}")
    provider = BedrockProvider(http, "us-west-2")
    with pytest.raises(UpstreamUnreachable) as caught:
        await provider.generate(make_request(ULTRA))
    assert caught.value.should_retry


# ------------------------------------------------------------------------------- build


@pytest.mark.anyio
async def test_build_needs_a_region_and_names_how_to_set_it() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ProviderNotConfigured) as caught:
            build_provider("bedrock", {}, Settings(), http)
        assert "IMAGEGW_BEDROCK_REGION" in caught.value.message
        with pytest.raises(ProviderNotConfigured):
            build_provider("bedrock", {"region": "us-west-2.evil.example"}, Settings(), http)
        built = build_provider("bedrock", {"region": "us-west-2"}, Settings(), http)
        assert isinstance(built, BedrockProvider)
        assert built.region == "us-west-2"
        await built.aclose()


@pytest.mark.anyio
async def test_the_region_setting_enables_the_provider_and_the_secret_overrides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imagegw.aws.credentials import EnvironmentCredentials, SecretCredentials
    from imagegw.aws.secrets_cache import CachedSecret

    monkeypatch.setenv("IMAGEGW_BEDROCK_REGION", "us-west-2")
    settings = Settings()
    assert await EnvironmentCredentials(settings).config("bedrock") == {"region": "us-west-2"}

    def fetch() -> str:
        return json.dumps({"bedrock": {"region": "us-east-1"}})

    secret = CachedSecret(fetch, role="test", ttl_seconds=60, grace_seconds=60)
    assert await SecretCredentials(secret, settings).config("bedrock") == {"region": "us-east-1"}
