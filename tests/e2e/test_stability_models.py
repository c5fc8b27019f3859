"""The openai client -> the gateway under uvicorn -> Stability models, on Bedrock and on Stability's
own API (fake upstreams on 127.0.0.1: a SigV4-checking Bedrock runtime reached by real boto3, and a
multipart-checking Stability API).

Both providers make one image per call, take an aspect ratio instead of a size, filter content
with an HTTP 200, and must never repeat a call that may have been billed: each promise is shown
here for both, as a user of the unchanged openai client sees it.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from e2e.conftest import CLIENT_KEY
from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.providers.bedrock import provider as bedrock_provider
from imagegw.providers.stability import provider as stability_provider
from imagegw.settings import Settings

from support import fake_bedrock, fake_stability
from support.fake_bedrock import FakeBedrock
from support.fake_stability import FakeStability
from support.fakes import FakeClock
from support.jobs import finished_job_over_http
from support.scripted_http import Delay, Hangup, Raw, Truncated
from support.servers import GatewayServer

MakeGateway = Callable[..., GatewayServer]


@dataclass(frozen=True)
class Upstream:
    """One of the two providers, as the tests script it."""

    name: str
    model: str
    fake: FakeBedrock | FakeStability
    image: Any  # a successful reply
    filtered: Any  # a reply whose image a filter withheld
    server_error: Any  # an ambiguous failure after the call was sent

    def calls(self) -> int:
        return len(self.fake.requests)


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock() as fake, pytest.MonkeyPatch.context() as patch:
        for name in fake_bedrock.CLEARED:
            patch.delenv(name, raising=False)
        for name, value in fake_bedrock.environment(fake).items():
            patch.setenv(name, value)
        yield fake
    assert fake.handler_errors == []


@pytest.fixture(scope="module")
def stability() -> Iterator[FakeStability]:
    with FakeStability() as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture(autouse=True)
def _fresh(bedrock: FakeBedrock, stability: FakeStability) -> None:
    bedrock.reset()
    stability.reset()


UPSTREAMS = ["bedrock", "stability"]


@pytest.fixture(params=UPSTREAMS)
def upstream(
    request: pytest.FixtureRequest, bedrock: FakeBedrock, stability: FakeStability
) -> Upstream:
    if request.param == "bedrock":
        return Upstream(
            "bedrock",
            "bedrock/stable-image-ultra",
            bedrock,
            fake_bedrock.Generated(),
            fake_bedrock.Filtered("Filter reason: prompt"),
            fake_bedrock.AwsError(500, "InternalServerException", "SECRET-UPSTREAM-DETAIL"),
        )
    return Upstream(
        "stability",
        "stability/stable-image-core",
        stability,
        fake_stability.Generated(),
        fake_stability.ContentFiltered(),
        fake_stability.StabilityError(500, "internal_error", ["SECRET-UPSTREAM-DETAIL"]),
    )


@pytest.fixture(scope="module")
def make_gateway(
    bedrock: FakeBedrock, stability: FakeStability, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeGateway]:
    directory = tmp_path_factory.mktemp("stability-e2e")
    with contextlib.ExitStack() as stack:

        def make(**overrides: Any) -> GatewayServer:
            values: dict[str, Any] = {
                "api_keys": CLIENT_KEY,
                "local_storage_dir": directory / "images",
                "url_signing_secret": "e2e-signing-secret",
                "openai_api_key": None,
                "bedrock_region": "us-west-2",
                "stability_api_key": fake_stability.API_KEY,
                "stability_base_url": stability.origin,
                "upstream_retry_base_seconds": 0.05,
            }
            values.update(overrides)
            runtime = Runtime(Settings(**values), clock=FakeClock())
            return stack.enter_context(GatewayServer(create_app(runtime=runtime)))

        yield make


@pytest.fixture(scope="module")
def gateway(make_gateway: MakeGateway) -> GatewayServer:
    return make_gateway()


def _client(gateway: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30
    )


@pytest.fixture
def oai(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with _client(gateway) as client:
        yield client


def _size(b64: str | None) -> str:
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    return f"{image.size[0]}x{image.size[1]}"


# ------------------------------------------------------------------------------------ success


@pytest.mark.parametrize(
    "model",
    [
        "bedrock/stable-image-ultra",
        "bedrock/stable-image-core",
        "bedrock/sd3.5-large",
        "bedrock/stability.sd3-5-large-v1:0",
        "stability/stable-image-ultra",
        "stability/stable-image-core",
        "stability/sd3.5-large",
        "stability/sd3.5-large-turbo",
        "stability/sd3.5-medium",
    ],
)
def test_every_model_generates_with_the_unchanged_client(oai: openai.OpenAI, model: str) -> None:
    raw = oai.images.with_raw_response.generate(model=model, prompt="a lighthouse")
    response = raw.parse()
    assert len(response.data) == 1
    assert _size(response.data[0].b64_json) == "1024x1024"
    assert response.size == "1024x1024"
    assert response.output_format == "png"
    body = json.loads(raw.content)
    assert body["aspect_ratio"] == "1:1"
    assert body["model"] == ("bedrock/sd3.5-large" if "sd3-5" in model else model)


def test_the_size_maps_to_a_ratio_and_the_real_size_is_reported(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    raw = oai.images.with_raw_response.generate(
        model=upstream.model, prompt="a lighthouse", size="1792x1024"
    )
    response = raw.parse()
    assert json.loads(raw.content)["aspect_ratio"] == "16:9"
    assert response.size == "1344x768"
    assert _size(response.data[0].b64_json) == "1344x768"


def test_a_size_the_model_cannot_honour_is_a_400_listing_the_accepted_ones(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=upstream.model, prompt="a lighthouse", size="256x256")
    assert caught.value.param == "size"
    assert "'256x256'" in caught.value.message
    assert "'1344x768'" in caught.value.message
    assert "'1792x1024'" in caught.value.message
    assert upstream.calls() == 0


def test_url_delivery_serves_the_images(oai: openai.OpenAI, upstream: Upstream) -> None:
    response = oai.images.generate(
        model=upstream.model, prompt="a tree", n=2, size="1024x1536", response_format="url"
    )
    assert len(response.data) == 2
    assert upstream.calls() == 2
    for item in response.data:
        assert item.b64_json is None
        assert item.url is not None
        fetched = httpx.get(item.url)
        assert fetched.status_code == 200
        assert fetched.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(fetched.content)).size == (832, 1216)


def test_seed_negative_prompt_and_format_are_documented_extensions(
    oai: openai.OpenAI, bedrock: FakeBedrock, stability: FakeStability
) -> None:
    for model in ("bedrock/sd3.5-large", "stability/sd3.5-large"):
        raw = oai.images.with_raw_response.generate(
            model=model,
            prompt="a harbour",
            output_format="jpeg",
            extra_body={"seed": 31337, "negative_prompt": "people"},
        )
        response = raw.parse()
        assert response.output_format == "jpeg"
        assert json.loads(raw.content)["seeds"] == [31337]
    sent = bedrock.calls()[0].json
    assert (sent["seed"], sent["negative_prompt"], sent["output_format"]) == (
        31337,
        "people",
        "jpeg",
    )
    fields = stability.accepted[0][1]
    assert (fields["seed"], fields["negative_prompt"], fields["output_format"]) == (
        "31337",
        "people",
        "jpeg",
    )


@pytest.mark.parametrize(
    ("model", "extra", "param"),
    [
        ("bedrock/stable-image-ultra", {"quality": "hd"}, "quality"),
        ("bedrock/stable-image-ultra", {"output_format": "webp"}, "output_format"),
        ("bedrock/stable-image-ultra", {"extra_body": {"seed": -1}}, "seed"),
        (
            "stability/sd3.5-large-turbo",
            {"extra_body": {"negative_prompt": "x"}},
            "negative_prompt",
        ),
        ("stability/stable-image-core", {"extra_body": {"watermark": False}}, "watermark"),
    ],
)
def test_parameters_a_model_does_not_take_are_400s(
    oai: openai.OpenAI,
    bedrock: FakeBedrock,
    stability: FakeStability,
    model: str,
    extra: dict[str, Any],
    param: str,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=model, prompt="a fox", **extra)
    assert caught.value.param == param
    assert bedrock.requests == []
    assert stability.requests == []


# ------------------------------------------------------------------------------------ filters


def test_a_partly_filtered_fan_out_says_how_many_were_withheld(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    upstream.fake.enqueue(upstream.filtered)
    raw = oai.images.with_raw_response.generate(model=upstream.model, prompt="a crowd", n=3)
    assert len(raw.parse().data) == 2
    assert raw.headers["x-imagegw-images-filtered"] == "1"
    body = json.loads(raw.content)
    assert body["images_filtered"] == 1
    # The catalog's per-image price, for the images delivered; an estimate (see the price note).
    per_image = {"bedrock": 0.14, "stability": 0.03}[upstream.name]
    assert body["cost"] == {"amount": per_image * 2, "currency": "USD", "estimated": True}


def test_a_fully_filtered_request_is_a_content_policy_violation_never_an_empty_200(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    upstream.fake.default = upstream.filtered
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=upstream.model, prompt="a crowd", n=2)
    assert caught.value.code == "content_policy_violation"
    assert caught.value.response.headers["x-should-retry"] == "false"


def test_a_moderated_stability_request_is_a_content_policy_violation(
    oai: openai.OpenAI, stability: FakeStability
) -> None:
    stability.default = fake_stability.moderated()
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model="stability/stable-image-ultra", prompt="a crowd")
    assert caught.value.code == "content_policy_violation"


# ------------------------------------------------------------------------------------ failures


def test_a_failed_call_of_a_fan_out_is_reported_and_the_rest_delivered(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    upstream.fake.enqueue(upstream.server_error)
    raw = oai.images.with_raw_response.generate(model=upstream.model, prompt="a fox", n=3)
    assert len(raw.parse().data) == 2
    assert raw.headers["x-imagegw-images-failed"] == "1"
    assert json.loads(raw.content)["images_failed"] == 1
    assert upstream.calls() == 3  # the failed call was not repeated: it may have been billed


@pytest.mark.parametrize("kind", ["server-error", "hangup"])
def test_an_ambiguous_failure_is_never_sent_again(
    oai: openai.OpenAI, upstream: Upstream, kind: str
) -> None:
    upstream.fake.default = upstream.server_error if kind == "server-error" else Hangup()
    with pytest.raises(openai.APIStatusError) as caught:
        oai.images.generate(model=upstream.model, prompt="a fox")
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.response.text
    assert upstream.calls() == 1


def test_a_rate_limited_call_is_retried_because_nothing_ran(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    upstream.fake.enqueue(
        fake_bedrock.throttled()
        if upstream.name == "bedrock"
        else fake_stability.StabilityError(
            429, "rate_limit_exceeded", ["slow down"], {"Retry-After": "0.1"}
        )
    )
    response = oai.images.generate(model=upstream.model, prompt="a fox")
    assert len(response.data) == 1
    assert upstream.calls() == 2


def test_the_deadline_expires_with_a_504_and_one_call(
    make_gateway: MakeGateway, upstream: Upstream
) -> None:
    upstream.fake.default = Delay(5, upstream.image)
    with _client(make_gateway(upstream_timeout_seconds=1.0)) as client:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            client.images.generate(model=upstream.model, prompt="a fox")
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert time.monotonic() - started < 4.5
    assert upstream.calls() == 1


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Raw(b"{not json"), id="malformed"),
        pytest.param(Truncated(b'{"images": ["iVBORw0KGgo'), id="truncated"),
        pytest.param(Raw(b'{"images": ["' + b"A" * (2 * 1024 * 1024) + b'"]}'), id="huge"),
    ],
)
def test_a_hostile_answer_is_a_502_bad_response_never_a_500(
    oai: openai.OpenAI, upstream: Upstream, reply: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gateway runs in this process: a 1 MiB cap stands for one image's worth.
    for module in (bedrock_provider, stability_provider):
        monkeypatch.setattr(module, "answer_limit", lambda request, images=None: 1024 * 1024)
    upstream.fake.default = reply
    with pytest.raises(openai.APIStatusError) as caught:
        oai.images.generate(model=upstream.model, prompt="a fox")
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_bad_response"
    assert upstream.calls() == 1


def test_bedrock_model_access_not_enabled_is_said(oai: openai.OpenAI, bedrock: FakeBedrock) -> None:
    bedrock.default = fake_bedrock.access_denied()
    with pytest.raises(openai.APIStatusError) as caught:
        oai.images.generate(model="bedrock/stable-image-core", prompt="a fox")
    assert caught.value.status_code == 503
    assert caught.value.code == "bedrock_model_access_denied"
    assert "Model access" in caught.value.message
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.response.text


def test_stability_out_of_credits_is_the_gateways_quota_error(
    oai: openai.OpenAI, stability: FakeStability
) -> None:
    stability.default = fake_stability.out_of_credits()
    with pytest.raises(openai.APIStatusError) as caught:
        oai.images.generate(model="stability/stable-image-core", prompt="a fox")
    assert caught.value.status_code == 503
    assert caught.value.code == "upstream_quota_exhausted"


def test_unconfigured_providers_name_the_setting(make_gateway: MakeGateway) -> None:
    with _client(make_gateway(bedrock_region=None, stability_api_key=None)) as client:
        for model, setting in (
            ("bedrock/stable-image-ultra", "IMAGEGW_BEDROCK_REGION"),
            ("stability/stable-image-ultra", "STABILITY_API_KEY"),
        ):
            with pytest.raises(openai.APIStatusError) as caught:
                client.images.generate(model=model, prompt="a fox")
            assert caught.value.status_code == 503
            assert caught.value.code == "provider_not_configured"
            assert setting in caught.value.message


# ------------------------------------------------------------------------------------ catalog, jobs


def test_models_lists_them_with_capabilities_and_lifecycle(oai: openai.OpenAI) -> None:
    listed = {model.id: model for model in oai.models.list()}
    for model_id in (
        "bedrock/stable-image-ultra",
        "bedrock/stable-image-core",
        "bedrock/sd3.5-large",
        "stability/stable-image-ultra",
        "stability/stable-image-core",
        "stability/sd3.5-large",
        "stability/sd3.5-large-turbo",
        "stability/sd3.5-medium",
    ):
        model = listed[model_id].model_dump()
        assert model["status"] == "active"
        assert model["shutdown_date"] is None
        capabilities = model["capabilities"]
        assert capabilities["n"] == {"min": 1, "max": 4}
        assert "1792x1024" in capabilities["sizes"]
        assert "640x1536" in capabilities["sizes"]
        assert "256x256" not in capabilities["sizes"]
        assert {"seed", "output_format"} <= set(capabilities["parameters"])
        assert capabilities["response_formats"] == ["b64_json", "url"]
        assert capabilities["prompt_max_chars"] == 10000
    bedrock_ultra = listed["bedrock/stable-image-ultra"].model_dump()
    assert "Legacy" in bedrock_ultra["capabilities"]["lifecycle_note"]
    assert "bedrock/stability.stable-image-ultra-v1:1" in bedrock_ultra["capabilities"]["aliases"]


def test_an_async_job_runs_to_completion(gateway: GatewayServer, upstream: Upstream) -> None:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}", "Prefer": "respond-async"}
    submitted = httpx.post(
        gateway.base_url + "/v1/images/generations",
        json={"model": upstream.model, "prompt": "a fox", "n": 2, "size": "1536x1024"},
        headers=headers,
    )
    assert submitted.status_code == 202, submitted.text
    view = finished_job_over_http(
        submitted.headers["location"], {"Authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert view["status"] == "succeeded", view
    result = view["result"]
    assert len(result["data"]) == 2
    assert result["size"] == "1216x832"
    assert result["aspect_ratio"] == "3:2"
    fetched = httpx.get(result["data"][0]["url"])
    assert Image.open(io.BytesIO(fetched.content)).size == (1216, 832)
    assert upstream.calls() == 2
