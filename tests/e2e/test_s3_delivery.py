"""The deployed setup, end to end on 127.0.0.1: the official openai client asks the gateway
(uvicorn) for ``url``; provider credentials and client keys come from Secrets Manager and the
images go to S3, both a moto server; a plain HTTP GET of each URL returns the image.

How "a URL past its lifetime is refused" is checked honestly: moto serves presigned URLs
without checking signature or expiry, so the gateway's S3 endpoint is ``S3Gate``, a small proxy
in front of moto that does what S3 does before serving a presigned GET: it verifies the SigV4
signature (AWS's rules, written independently of botocore, with the secret of the URL's access
key) and refuses the URL once ``X-Amz-Date + X-Amz-Expires`` has passed, on a clock the test
can move. The URLs the gateway hands out name the gate, so the caller's GET is judged like one
sent to S3. The test also checks that the advertised ``expires_at`` is what the URL really
carries (the signing time truncates to whole seconds, so at most one second later).
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from e2e.conftest import UPSTREAM_KEY
from imagegw.cli.keys import main as keys_command
from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.aws import create_bucket, create_secret, process_credentials
from support.fake_openai import FakeOpenAI, encode_image
from support.leaks import LeakWatch
from support.s3_gate import S3Gate
from support.servers import GatewayServer
from support.sigv4 import parameters

LIFETIME = 3600


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class Stack:
    gateway: GatewayServer
    gate: S3Gate
    client: openai.OpenAI
    client_key: str


@pytest.fixture
def stack(
    aws_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    moto_url: str,
    upstream: FakeOpenAI,
    capfd: pytest.CaptureFixture[str],
    leak_watch: LeakWatch,
) -> Iterator[Stack]:
    # AWS as the deployed gateway sees it: Secrets Manager and STS at moto, S3 behind the gate.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    suffix = secrets.token_hex(4)
    bucket = f"imagegw-e2e-{suffix}"
    create_bucket(bucket, endpoint_url=moto_url)
    provider_secret = create_secret(
        f"imagegw/e2e/{suffix}/providers",
        {"openai": {"api_key": UPSTREAM_KEY, "base_url": upstream.base_url}},
    )
    keys_secret = f"imagegw/e2e/{suffix}/client-keys"
    # The operator creates the client key with the keys command.
    assert keys_command(["--secret-id", keys_secret, "create", "--name", "e2e"]) == 0
    client_key = capfd.readouterr().out.strip()
    leak_watch.secret(client_key, UPSTREAM_KEY)

    with contextlib.ExitStack() as stack:
        gate = stack.enter_context(S3Gate(moto_url, secrets=process_credentials()))
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", gate.url)
        settings = Settings(
            storage="s3",
            s3_bucket=bucket,
            provider_secret_id=provider_secret,
            client_keys_secret_id=keys_secret,
            url_ttl_seconds=LIFETIME,
            log_level="DEBUG",
        )
        # The real clock: URLs are dated by it (X-Amz-Date), and expires_at must agree.
        gateway = stack.enter_context(GatewayServer(create_app(runtime=Runtime(settings))))
        client = stack.enter_context(
            openai.OpenAI(
                base_url=gateway.base_url + "/v1", api_key=client_key, max_retries=0, timeout=20
            )
        )
        yield Stack(gateway, gate, client, client_key)
    # The gateway, uvicorn and the fake upstream wrote nothing sensitive to stdout/stderr.
    captured = capfd.readouterr()
    leak_watch.assert_clean([captured.out, captured.err])


def get(url: str) -> tuple[int, bytes, str]:
    """A plain HTTP GET, as a browser or curl would follow the link: no key, no SDK."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read(), answer.headers["Content-Type"]
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read(), refused.headers["Content-Type"]


def fixed(moment: float) -> Callable[[], float]:
    return lambda: moment


def links(response: Any) -> list[tuple[str, int]]:
    found = []
    for item in response.data:
        assert item.url is not None
        assert item.b64_json is None
        expires_at = (item.model_extra or {})["expires_at"]
        assert isinstance(expires_at, int)
        found.append((item.url, expires_at))
    return found


def test_local_model_images_come_back_from_s3_and_their_urls_expire(
    stack: Stack, leak_watch: LeakWatch
) -> None:
    request: dict[str, Any] = {"model": "local/sketch", "prompt": "a kite", "n": 2}
    response = stack.client.images.generate(**request, size="256x256", response_format="url")
    inline = stack.client.images.generate(**request, size="256x256", response_format="b64_json")
    expected = [base64.b64decode(item.b64_json or "") for item in inline.data]
    assert len(set(expected)) == 2

    urls = links(response)
    assert len(urls) == 2
    for (url, expires_at), image in zip(urls, expected, strict=True):
        leak_watch.url(url)
        leak_watch.image(image)
        assert url.startswith(stack.gate.url + "/")
        signed = parameters(url)
        assert signed.expires == LIFETIME
        # The advertised expiry is what the URL carries (whole seconds may round it down).
        assert 0 <= signed.expires_at - expires_at <= 1

        assert get(url) == (200, image, "image/png")
        stack.gate.now = fixed(expires_at - 1)  # the last second of the advertised lifetime
        assert get(url)[0] == 200
        stack.gate.now = fixed(expires_at + 1)
        status, body, _ = get(url)
        assert status == 403
        assert b"Request has expired" in body
        stack.gate.now = time.time

    # The gate verifies signatures (it is not just a clock): a changed URL is refused.
    tampered = urls[0][0].replace("X-Amz-Expires=3600", "X-Amz-Expires=7200")
    status, body, _ = get(tampered)
    assert status == 403
    assert b"SignatureDoesNotMatch" in body
    refused = [reason for _, reason in stack.gate.decisions if reason is not None]
    assert len(refused) == 3


def test_openai_model_images_through_the_upstream_come_back_from_s3(
    stack: Stack, upstream: FakeOpenAI, leak_watch: LeakWatch
) -> None:
    response = stack.client.images.generate(
        model="openai/gpt-image-2",
        prompt="a harbour",
        n=2,
        size="1024x1024",
        output_format="jpeg",
        response_format="url",
    )

    (sent,) = upstream.requests
    # The provider key came from the secret; the caller's key never went upstream.
    assert sent.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert stack.client_key not in repr(sent.raw_headers) + sent.body.decode()
    assert "response_format" not in sent.json
    for index, (url, _) in enumerate(links(response)):
        leak_watch.url(url)
        image = encode_image("1024x1024", "jpeg", index)
        leak_watch.image(image)
        assert get(url) == (200, image, "image/jpeg")


def test_a_revoked_or_unknown_key_gets_a_401(stack: Stack) -> None:
    with (
        openai.OpenAI(
            base_url=stack.gateway.base_url + "/v1", api_key="sk-imagegw-not-a-key", max_retries=0
        ) as stranger,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        stranger.images.generate(model="local/sketch", prompt="x", response_format="url")
    assert caught.value.status_code == 401
    assert stack.gate.decisions == []
