"""response_format=url through a private S3 bucket (moto): what is stored, what the URL carries,
who signed it, and what the caller gets when storage fails.

moto checks neither presigned signatures nor expiry, so signatures are verified here with
``support.sigv4`` (AWS's SigV4 rules, written independently of botocore) against the secret of
the access key the URL names.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from api.api_support import GENERATIONS, assert_error, client_for
from fastapi.testclient import TestClient

from imagegw.aws.clients import client as aws_client
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import StorageUnavailable
from imagegw.providers.base import GeneratedImage, ImageRequest, ImageResult
from imagegw.settings import Settings
from imagegw.storage.presign import (
    SAFETY_SECONDS,
    SHARED_SECONDS,
    OwnCredentialsPresigner,
    RolePresigner,
)
from imagegw.storage.s3 import S3ImageStore, s3_client

from conftest import API_KEY, AUTH
from support.aws import (
    BUCKET,
    AssumedRoles,
    create_bucket,
    process_credentials,
    region,
    stored_objects,
)
from support.fake_openai import encode_image
from support.fakes import FakeClock, FakeProvider
from support.leaks import LeakWatch
from support.sigv4 import parameters, refusal

PROMPT = "a secret lighthouse for team-alpha"
SIGNER_ROLE = "arn:aws:iam::123456789012:role/imagegw-url-signer"
OBJECT_KEY = re.compile(r"^images/[0-9a-f]{32}\.(png|jpeg)$")


def distinct_images(output_format: str = "png") -> Callable[[ImageRequest], ImageResult]:
    """A provider answer with a different real image per index, so mix-ups show."""
    media_type = f"image/{output_format}"

    def result(request: ImageRequest) -> ImageResult:
        return ImageResult(
            images=[
                GeneratedImage(media_type=media_type, data=encode_image("32x32", output_format, i))
                for i in range(request.n)
            ],
            output_format=output_format,
        )

    return result


def s3_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_keys": API_KEY,
        "storage": "s3",
        "s3_bucket": BUCKET,
        "log_level": "DEBUG",
    }
    values.update(overrides)
    return Settings(**values)


def ask_for_urls(client: TestClient, n: int = 2, **extra: Any) -> Any:
    body = {"model": "openai/gpt-image-2", "prompt": PROMPT, "n": n, "response_format": "url"}
    return client.post(GENERATIONS, json={**body, **extra}, headers=AUTH)


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def target(url: str) -> tuple[str, dict[str, str]]:
    """The request line target and Host header a client sends for ``url``."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}", {"Host": parts.netloc}


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(result=distinct_images())


@pytest.fixture
def s3_client_for_runtime(
    mocked_aws: None, provider: FakeProvider, clock: FakeClock
) -> Iterator[TestClient]:
    runtime = Runtime(s3_settings(), providers={"openai": provider}, clock=clock)
    with client_for(runtime) as client:
        yield client


# ---------------------------------------------------------------- what is stored


@pytest.mark.parametrize("output_format", ["png", "jpeg"])
def test_images_are_stored_under_random_keys_with_their_type_and_encryption(
    mocked_aws: None, clock: FakeClock, leak_watch: LeakWatch, output_format: str
) -> None:
    s3 = create_bucket()
    provider = FakeProvider(result=distinct_images(output_format))
    runtime = Runtime(s3_settings(), providers={"openai": provider}, clock=clock)
    with client_for(runtime) as client:
        response = ask_for_urls(client, n=3, output_format=output_format)

    assert response.status_code == 200, response.text
    assert "x-imagegw-delivery" not in response.headers
    items = response.json()["data"]
    assert all(set(item) == {"url", "expires_at"} for item in items)
    objects = stored_objects(s3)
    expected = [encode_image("32x32", output_format, i) for i in range(3)]
    assert len(objects) == 3
    by_url = {}
    for key, stored in objects.items():
        assert OBJECT_KEY.match(key), key
        assert key.endswith("." + output_format)
        assert stored["ContentType"] == f"image/{output_format}"
        assert stored["ServerSideEncryption"] == "AES256"
        by_url[key] = stored["Body"]
    # Each URL names its own object, in the order of the images.
    for item, image in zip(items, expected, strict=True):
        key = urlsplit(item["url"]).path.lstrip("/")
        assert by_url[key] == image
        leak_watch.url(item["url"])
        leak_watch.image(image)
    # The key reveals nothing about the request or the caller.
    for word in ("lighthouse", "team", "alpha", "env-key"):
        assert all(word not in key for key in objects)


def test_kms_key_is_used_when_configured(mocked_aws: None, clock: FakeClock) -> None:
    s3 = create_bucket()
    kms_key = aws_client("kms", region_name=region()).create_key()["KeyMetadata"]["KeyId"]
    runtime = Runtime(
        s3_settings(s3_kms_key_id=kms_key),
        providers={"openai": FakeProvider(result=distinct_images())},
        clock=clock,
    )
    with client_for(runtime) as client:
        response = ask_for_urls(client, n=1)

    assert response.status_code == 200, response.text
    (stored,) = stored_objects(s3).values()
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert kms_key in stored["SSEKMSKeyId"]


class BarrierS3:
    """An S3 client whose put_object waits until ``parties`` uploads are in flight at once.

    Uploads that ran one after another would never fill the barrier: its timeout breaks it, the
    upload fails, and the request falls back to inline images, which the test refuses.
    """

    def __init__(self, real: Any, parties: int) -> None:
        self._real = real
        self.barrier = threading.Barrier(parties, timeout=10)

    def put_object(self, **kwargs: Any) -> Any:
        self.barrier.wait()
        return self._real.put_object(**kwargs)


def test_the_images_of_one_request_upload_concurrently(
    mocked_aws: None, clock: FakeClock, provider: FakeProvider
) -> None:
    s3 = create_bucket()
    client = BarrierS3(s3_client(), parties=4)
    store = S3ImageStore(
        lambda: client,
        OwnCredentialsPresigner(s3_client, ttl_seconds=3600, clock=clock),
        bucket=BUCKET,
    )
    runtime = Runtime(s3_settings(), image_store=store, providers={"openai": provider}, clock=clock)
    with client_for(runtime) as api:
        response = ask_for_urls(api, n=4)

    assert response.status_code == 200, response.text
    assert "x-imagegw-delivery" not in response.headers
    assert all("url" in item for item in response.json()["data"])
    assert not client.barrier.broken
    assert len(stored_objects(s3)) == 4


# ---------------------------------------------------------------- the URL


@pytest.mark.parametrize("aws_region", ["eu-west-1", "us-east-1"])
def test_url_is_sigv4_on_the_buckets_regional_virtual_hosted_endpoint(
    monkeypatch: pytest.MonkeyPatch,
    mocked_aws: None,
    provider: FakeProvider,
    clock: FakeClock,
    aws_region: str,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", aws_region)
    create_bucket()
    runtime = Runtime(s3_settings(url_ttl_seconds=900), providers={"openai": provider}, clock=clock)
    with client_for(runtime) as client:
        response = ask_for_urls(client, n=1)

    assert response.status_code == 200, response.text
    body = response.json()
    (item,) = body["data"]
    url = urlsplit(item["url"])
    assert url.scheme == "https"
    # us-east-1 too: its legacy global host s3.amazonaws.com is not the regional endpoint.
    assert url.netloc == f"{BUCKET}.s3.{aws_region}.amazonaws.com"
    assert OBJECT_KEY.match(url.path.lstrip("/"))
    signed = parameters(item["url"])
    assert query(item["url"])["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    (access_key,) = process_credentials()
    assert (signed.access_key, signed.region, signed.service) == (access_key, aws_region, "s3")
    assert signed.signed_headers == ("host",)
    # The advertised lifetime is the one signed into the URL.
    assert signed.expires == 900
    assert item["expires_at"] == body["created"] + 900
    request_target, headers = target(item["url"])
    assert refusal(request_target, headers, process_credentials(), signed.signed_at) is None
    # moto serves the object behind the URL (requests is intercepted by moto, urllib is not).
    fetched = requests.get(item["url"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == encode_image("32x32", "png", 0)
    assert fetched.headers["Content-Type"] == "image/png"


def test_a_changed_url_does_not_verify(
    s3_client_for_runtime: TestClient,
) -> None:
    """The verifier the other tests rely on refuses what S3 refuses (it is not vacuous)."""
    create_bucket()
    (item,) = ask_for_urls(s3_client_for_runtime, n=1).json()["data"]
    signed = parameters(item["url"])
    request_target, headers = target(item["url"])
    secrets = process_credentials()
    assert refusal(request_target, headers, secrets, signed.signed_at) is None
    other_key = re.sub(r"/[0-9a-f]{32}\.", "/" + "0" * 32 + ".", request_target)
    longer = request_target.replace(f"X-Amz-Expires={signed.expires}", "X-Amz-Expires=604800")
    assert refusal(other_key, headers, secrets, signed.signed_at) == "SignatureDoesNotMatch"
    assert refusal(longer, headers, secrets, signed.signed_at) == "SignatureDoesNotMatch"
    wrong = dict.fromkeys(secrets, "wrong")
    assert refusal(request_target, headers, wrong, signed.signed_at) == "SignatureDoesNotMatch"
    expired = refusal(request_target, headers, secrets, signed.expires_at)
    assert expired is not None
    assert "expired" in expired


# ---------------------------------------------------------------- the signer role


@pytest.fixture
def real_clock(monkeypatch: pytest.MonkeyPatch, mocked_aws: None) -> FakeClock:
    """A clock the test moves, starting at the real time, that STS (moto) shares.

    Credentials are dated by STS's clock and judged by the gateway's: they must be one clock.
    It starts at the real time because botocore dates signatures (X-Amz-Date) by the real one.
    """
    clock = FakeClock(time.time())

    def sts_now() -> dt.datetime:
        return dt.datetime.fromtimestamp(clock.now, dt.UTC).replace(tzinfo=None)

    monkeypatch.setattr("moto.sts.models.utcnow", sts_now)
    return clock


def role_runtime(
    roles: AssumedRoles, clock: FakeClock, provider: FakeProvider, ttl: int
) -> Runtime:
    presigner = RolePresigner(
        role_arn=SIGNER_ROLE,
        ttl_seconds=ttl,
        sts_client=roles.client,
        s3_client=lambda credentials: s3_client(credentials=credentials),
        clock=clock,
    )
    store = S3ImageStore(s3_client, presigner, bucket=BUCKET)
    settings = s3_settings(url_ttl_seconds=ttl, s3_signer_role_arn=SIGNER_ROLE)
    return Runtime(settings, image_store=store, providers={"openai": provider}, clock=clock)


def test_urls_are_signed_by_the_assumed_role_and_never_outlive_it(
    mocked_aws: None, real_clock: FakeClock, provider: FakeProvider, leak_watch: LeakWatch
) -> None:
    create_bucket()
    roles = AssumedRoles()
    with client_for(role_runtime(roles, real_clock, provider, ttl=3600)) as client:
        response = ask_for_urls(client, n=2)

    assert response.status_code == 200, response.text
    assert roles.answers, "the signer role was never assumed"
    for item in response.json()["data"]:
        signed = parameters(item["url"])
        leak_watch.url(item["url"])
        # Signed with the role's temporary credentials, not the process's own key.
        assert signed.access_key not in process_credentials()
        assert signed.access_key in roles.secrets()
        assert signed.security_token
        request_target, headers = target(item["url"])
        assert refusal(request_target, headers, roles.secrets(), signed.signed_at) is None
        assert refusal(request_target, headers, process_credentials(), signed.signed_at) == (
            "InvalidAccessKeyId"
        )
        # Neither the advertised expiry nor the URL itself outlives the credentials.
        expiration = roles.expiration_of(signed.access_key)
        assert item["expires_at"] <= expiration
        assert signed.expires_at <= expiration
        assert signed.expires <= 3600
    for answer in roles.answers:
        leak_watch.secret(answer["SecretAccessKey"], answer["SessionToken"])


def test_role_credentials_are_reused_while_they_outlive_a_url_then_renewed(
    mocked_aws: None, real_clock: FakeClock, provider: FakeProvider
) -> None:
    """ttl 600 s: the role is assumed for 900 s, reusable while 660 s (ttl + margin) remain."""
    create_bucket()
    roles = AssumedRoles()

    def signer_keys(client: TestClient, n: int) -> list[str]:
        response = ask_for_urls(client, n=n)
        assert response.status_code == 200, response.text
        items = response.json()["data"]
        for item in items:
            signed = parameters(item["url"])
            assert item["expires_at"] <= roles.expiration_of(signed.access_key)
            assert signed.expires == item["expires_at"] - response.json()["created"]
        return [parameters(item["url"]).access_key for item in items]

    with client_for(role_runtime(roles, real_clock, provider, ttl=600)) as client:
        first = signer_keys(client, 2)
        real_clock.now += 200  # 700 s left: still enough for a full 600 s URL
        second = signer_keys(client, 1)
        real_clock.now += 100  # 600 s left: a new URL would outlive them
        third = signer_keys(client, 2)

    assert len(set(first)) == 1
    assert second == first[:1]
    assert len(set(third)) == 1
    assert third[0] != first[0]
    assert len(roles.answers) == 2


def test_with_a_one_hour_lifetime_each_response_gets_fresh_credentials(
    mocked_aws: None, real_clock: FakeClock, provider: FakeProvider
) -> None:
    """Role chaining caps sessions at one hour, so a full-hour URL needs new credentials.

    The links of one response share one STS call (SHARED_SECONDS); a later response assumes
    the role again. Every expires_at stays within the credentials that signed it.
    """
    create_bucket()
    roles = AssumedRoles()
    with client_for(role_runtime(roles, real_clock, provider, ttl=3600)) as client:
        first_at = int(real_clock.now)
        first = ask_for_urls(client, n=4).json()["data"]
        real_clock.now += SHARED_SECONDS + 1
        second_at = int(real_clock.now)
        second = ask_for_urls(client, n=1).json()["data"]
    first_keys = {parameters(item["url"]).access_key for item in first}
    assert len(first_keys) == 1
    assert parameters(second[0]["url"]).access_key not in first_keys
    shortest = 3600 - SHARED_SECONDS - SAFETY_SECONDS - 1
    for asked_at, items in ((first_at, first), (second_at, second)):
        for item in items:
            signed = parameters(item["url"])
            assert item["expires_at"] <= roles.expiration_of(signed.access_key)
            # At most the sharing window and the safety margin short of the hour.
            assert item["expires_at"] >= asked_at + shortest


def test_the_configured_signer_role_signs_the_urls(
    mocked_aws: None, clock: FakeClock, provider: FakeProvider
) -> None:
    """Through settings alone (IMAGEGW_S3_SIGNER_ROLE_ARN), as the deployed stack runs."""
    create_bucket()
    runtime = Runtime(
        s3_settings(s3_signer_role_arn=SIGNER_ROLE, url_ttl_seconds=600),
        providers={"openai": provider},
        clock=FakeClock(time.time()),
    )
    with client_for(runtime) as client:
        response = ask_for_urls(client, n=1)
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    signed = parameters(item["url"])
    assert signed.access_key not in process_credentials()
    assert signed.security_token
    assert urlsplit(item["url"]).netloc == f"{BUCKET}.s3.{region()}.amazonaws.com"


# ---------------------------------------------------------------- storage failures


def assert_inline_fallback(response: Any, n: int) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["x-imagegw-delivery"] == "b64_json; reason=storage_unavailable"
    items = response.json()["data"]
    assert [base64.b64decode(item["b64_json"]) for item in items] == [
        encode_image("32x32", "png", i) for i in range(n)
    ]
    assert all("url" not in item for item in items)


def test_missing_bucket_returns_the_images_inline_and_says_so(
    s3_client_for_runtime: TestClient, leak_watch: LeakWatch
) -> None:
    response = ask_for_urls(s3_client_for_runtime, n=2)  # no bucket was created
    assert_inline_fallback(response, 2)
    for item in response.json()["data"]:
        leak_watch.secret(item["b64_json"], what="image base64")


def test_unreachable_s3_returns_the_images_inline(
    monkeypatch: pytest.MonkeyPatch,
    mocked_aws: None,
    provider: FakeProvider,
    clock: FakeClock,
    closed_port: int,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed_port}")
    runtime = Runtime(s3_settings(), providers={"openai": provider}, clock=clock)
    with client_for(runtime) as client:
        response = ask_for_urls(client, n=2)
    assert_inline_fallback(response, 2)


def test_unreachable_sts_returns_the_images_inline(
    monkeypatch: pytest.MonkeyPatch,
    mocked_aws: None,
    provider: FakeProvider,
    clock: FakeClock,
    closed_port: int,
) -> None:
    """The images were stored, but no link could be signed: the caller still gets them."""
    create_bucket()
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{closed_port}")
    runtime = Runtime(
        s3_settings(s3_signer_role_arn=SIGNER_ROLE), providers={"openai": provider}, clock=clock
    )
    with client_for(runtime) as client:
        response = ask_for_urls(client, n=2)
    assert_inline_fallback(response, 2)


def test_storage_failure_with_images_too_big_to_inline_is_503(
    mocked_aws: None, provider: FakeProvider, clock: FakeClock
) -> None:
    runtime = Runtime(
        s3_settings(enforce_response_limit=True, max_response_bytes=1024),
        providers={"openai": provider},
        clock=clock,
    )
    with client_for(runtime) as client:
        response = ask_for_urls(client, n=2)  # no bucket: storing fails
    message = assert_error(response, 503, code="storage_unavailable")
    assert "could not store" in message
    assert "1024-byte" in message
    assert "b64_json" not in response.text


def test_s3_without_a_bucket_name_costs_b64_callers_nothing_and_url_callers_no_images(
    mocked_aws: None, provider: FakeProvider, clock: FakeClock
) -> None:
    """A storage misconfiguration is a storage failure: b64_json never touches storage, and
    url callers get the images they paid for inline."""
    runtime = Runtime(s3_settings(s3_bucket=None), providers={"openai": provider}, clock=clock)
    with client_for(runtime) as client:
        inline = client.post(
            GENERATIONS,
            json={"model": "openai/gpt-image-2", "prompt": PROMPT, "n": 1},
            headers=AUTH,
        )
        linked = ask_for_urls(client, n=2)

    assert inline.status_code == 200, inline.text
    assert "x-imagegw-delivery" not in inline.headers
    assert base64.b64decode(inline.json()["data"][0]["b64_json"]) == encode_image("32x32", "png", 0)
    assert_inline_fallback(linked, 2)


# ---------------------------------------------------------------------------- existence (jobs)


@pytest.mark.anyio
async def test_the_store_asks_s3_with_the_signers_credentials_whether_an_image_is_left(
    mocked_aws: None, real_clock: FakeClock
) -> None:
    s3 = create_bucket()
    roles = AssumedRoles()
    presigner = RolePresigner(
        role_arn=SIGNER_ROLE,
        ttl_seconds=3600,
        sts_client=roles.client,
        s3_client=lambda credentials: s3_client(credentials=credentials),
        clock=real_clock,
    )
    store = S3ImageStore(s3_client, presigner, bucket=BUCKET)
    key = "0123456789abcdef0123456789abcdef.png"
    await store.put(key, b"\x89PNG\r\n\x1a\n", "image/png")
    assert await store.exists(key) is True
    assert roles.answers, "asked with the signer role's credentials"
    # The bucket's lifecycle rule deletes it.
    s3.delete_object(Bucket=BUCKET, Key=f"images/{key}")
    assert await store.exists(key) is False


class HeadRefused:
    """An S3 client whose HEAD fails with ``code``, as botocore raises it."""

    def __init__(self, code: str) -> None:
        self.code = code

    def head_object(self, **_: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": self.code, "Message": "x"}}, "HeadObject")


@pytest.mark.anyio
@pytest.mark.parametrize(("code", "exists"), [("404", False), ("403", False), ("500", None)])
async def test_a_missing_object_is_absent_and_other_failures_are_unavailable(
    code: str, exists: bool | None
) -> None:
    # Without s3:ListBucket (the signer has none) S3 answers a missing key with 403.
    presigner = OwnCredentialsPresigner(lambda: HeadRefused(code), ttl_seconds=60)
    store = S3ImageStore(lambda: HeadRefused(code), presigner, bucket=BUCKET)
    key = "0123456789abcdef0123456789abcdef.png"
    if exists is None:
        with pytest.raises(StorageUnavailable):
            await store.exists(key)
    else:
        assert await store.exists(key) is exists
