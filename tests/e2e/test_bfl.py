"""The openai client -> the gateway under uvicorn -> the fake Black Forest Labs API.

The gateway is configured the way a user would (BFL_API_KEY and BFL_BASE_URL as settings), so the
provider is built from its config on the first request. Deadlines as Lambda sets them are shown
by handing the app a Lambda context the way Mangum does (``scope["aws.context"]``).
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from e2e.conftest import CLIENT_KEY
from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.fake_bfl import (
    DELIVERY_PATH,
    Accept,
    BflError,
    Delay,
    FakeBfl,
    Hangup,
    Raw,
    rate_limited,
    server_error,
)
from support.fake_openai import encode_image
from support.fakes import FakeClock
from support.jobs import finished_job_over_http
from support.servers import GatewayServer

PRO = "bfl/flux-2-pro"
MakeGateway = Callable[..., GatewayServer]
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


class LambdaContext:
    """What Mangum passes as ``aws.context``: only the remaining time matters here."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class WithLambdaContext:
    """The app as Mangum runs it for a Function URL: every request carries the context."""

    def __init__(self, app: Any, context: LambdaContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "aws.context": self.context}
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def bfl() -> Iterator[FakeBfl]:
    with FakeBfl() as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture(autouse=True)
def _fresh_bfl(bfl: FakeBfl) -> None:
    bfl.reset()


@pytest.fixture(scope="module")
def make_gateway(bfl: FakeBfl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeGateway]:
    directory = tmp_path_factory.mktemp("bfl-e2e")
    with contextlib.ExitStack() as stack:

        def make(*, lambda_ms: int | None = None, **overrides: Any) -> GatewayServer:
            values: dict[str, Any] = {
                "api_keys": CLIENT_KEY,
                "local_storage_dir": directory / "images",
                "url_signing_secret": "e2e-signing-secret",
                "bfl_api_key": bfl.api_key,
                "bfl_base_url": bfl.origin,
                "bfl_poll_seconds": 0.02,
                "openai_api_key": None,
            }
            values.update(overrides)
            runtime = Runtime(Settings(**values), clock=FakeClock())
            app: Any = create_app(runtime=runtime)
            if lambda_ms is not None:
                app = WithLambdaContext(app, LambdaContext(lambda_ms))
            return stack.enter_context(GatewayServer(app, runtime=runtime))

        yield make


@pytest.fixture(scope="module")
def gateway(make_gateway: MakeGateway) -> GatewayServer:
    return make_gateway()


def _client(gateway: GatewayServer, *, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=max_retries, timeout=30
    )


@pytest.fixture(scope="module")
def short_gateway(make_gateway: MakeGateway) -> GatewayServer:
    """A gateway whose requests may take 3 s (the fault matrix's slow cases end sooner)."""
    return make_gateway(upstream_timeout_seconds=3)


@pytest.fixture
def oai(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with _client(gateway) as client:
        yield client


def _size(data: bytes) -> str:
    image = Image.open(io.BytesIO(data))
    return f"{image.size[0]}x{image.size[1]}"


# ------------------------------------------------------------------------------------ images


def test_flux_2_pro_as_b64_json(oai: openai.OpenAI, bfl: FakeBfl) -> None:
    bfl.enqueue(Accept(statuses=("Pending", "Pending", "Ready")))
    response = oai.images.generate(
        model=PRO, prompt="a red fox", size="1536x1024", response_format="b64_json"
    )
    assert response.data is not None
    assert response.data[0].b64_json is not None
    data = base64.b64decode(response.data[0].b64_json)
    assert data == encode_image("1536x1024", "jpeg")
    assert response.size == "1536x1024"
    assert response.output_format == "jpeg"
    # BFL's own figure (3 credits), not the catalog's estimate.
    assert response.model_extra is not None
    assert response.model_extra["cost"] == {"amount": 0.03, "currency": "USD", "estimated": False}
    (submit,) = bfl.submits()
    assert submit.path == "/v1/flux-2-pro"
    assert submit.header("x-key") == bfl.api_key
    assert submit.json == {"prompt": "a red fox", "width": 1536, "height": 1024}
    assert all(download.header("x-key") is None for download in bfl.downloads())


def test_url_delivery_is_the_gateways_own_link(oai: openai.OpenAI, bfl: FakeBfl) -> None:
    response = oai.images.generate(
        model="bfl/flux-2-klein-9b", prompt="a kite", output_format="png", response_format="url"
    )
    assert response.data is not None
    url = response.data[0].url
    assert url is not None
    # Never BFL's short-lived link.
    assert DELIVERY_PATH not in url
    assert bfl.origin not in url
    fetched = httpx.get(url)
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/png"
    assert fetched.content == encode_image("1024x1024", "png")


def test_aspect_ratio_model_reports_the_size_it_made(oai: openai.OpenAI, bfl: FakeBfl) -> None:
    response = oai.images.generate(
        model="bfl/flux-pro-1.1-ultra", prompt="a valley", size="1792x1024"
    )
    assert bfl.submits()[0].json == {"prompt": "a valley", "aspect_ratio": "7:4"}
    assert response.data is not None
    assert response.data[0].b64_json is not None
    assert _size(base64.b64decode(response.data[0].b64_json)) == response.size == "1344x768"


def test_a_size_the_model_cannot_make_is_a_400_listing_what_it_takes(
    oai: openai.OpenAI, bfl: FakeBfl
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model="bfl/flux-pro-1.1", prompt="a fox", size="1792x1024")
    assert caught.value.code == "invalid_value"
    message = caught.value.message
    assert "1792x1024" in message
    assert "'1024x768'" in message
    assert "multiples of 32" in message
    assert "1440" in message
    assert bfl.requests == []


def test_seed_is_a_documented_extension(oai: openai.OpenAI, bfl: FakeBfl) -> None:
    response = oai.images.generate(
        model="bfl/flux-kontext-pro", prompt="a fox", n=2, extra_body={"seed": 7}
    )
    assert sorted(submit.json["seed"] for submit in bfl.submits()) == [7, 8]
    assert response.model_extra is not None
    assert response.model_extra["seeds"] == [7, 8]


def test_parameters_bfl_does_not_take(oai: openai.OpenAI, bfl: FakeBfl) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=PRO, prompt="a fox", background="transparent")
    assert caught.value.code == "unsupported_parameter"
    assert bfl.requests == []
    raw = oai.images.with_raw_response.generate(model=PRO, prompt="a fox", quality="hd")
    assert raw.headers["x-imagegw-ignored-params"] == "quality"
    assert "quality" not in bfl.submits()[0].json


# ------------------------------------------------------------------------------------ failures


@pytest.mark.parametrize("status", ["Request Moderated", "Content Moderated"])
def test_moderation_is_a_content_policy_violation(
    oai: openai.OpenAI, bfl: FakeBfl, status: str
) -> None:
    bfl.default = Accept(statuses=("Pending", status))
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=PRO, prompt="something flagged", n=2)
    assert caught.value.code == "content_policy_violation"
    assert status in caught.value.message


def test_fan_out_with_a_partial_failure_delivers_the_rest(oai: openai.OpenAI, bfl: FakeBfl) -> None:
    bfl.enqueue(
        Accept(), Accept(statuses=("Pending", "Error")), Accept(statuses=("Content Moderated",))
    )
    raw = oai.images.with_raw_response.generate(model=PRO, prompt="three foxes", n=3)
    response = raw.parse()
    assert response.data is not None
    assert len(response.data) == 1
    assert raw.headers["x-imagegw-images-failed"] == "1"
    assert raw.headers["x-imagegw-images-filtered"] == "1"
    body = raw.http_response.json()
    assert body["images_failed"] == 1
    assert body["images_filtered"] == 1
    assert len(bfl.submits()) == 3


@pytest.mark.parametrize(
    "reply",
    [server_error(), Hangup(), Raw(b'{"id": "task-x", "polling_url": '), Raw(b"[1, 2]")],
    ids=["500", "hangup", "malformed-json", "not-an-object"],
)
def test_no_resubmit_after_an_ambiguous_failure(
    gateway: GatewayServer, bfl: FakeBfl, reply: Any
) -> None:
    bfl.enqueue(reply)
    # The client may retry on its own: the gateway's x-should-retry tells it not to.
    with _client(gateway, max_retries=2) as client, pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model=PRO, prompt="a fox")
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.code in ("upstream_error", "upstream_bad_response")
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.response.text
    assert len(bfl.submits()) == 1


_EXPIRED = "expired"


def _fault_matrix() -> list[Any]:
    """(what BFL does, caller status, error code): every row is refused with x-should-retry
    false, after exactly one submit, even by a client that retries on its own."""
    rows: list[tuple[str, Any, int, str]] = [
        (
            "submit-402",
            BflError(402, {"detail": "Insufficient credits"}),
            503,
            "upstream_quota_exhausted",
        ),
        (
            "submit-403",
            BflError(403, {"detail": "Forbidden SECRET-UPSTREAM-DETAIL"}),
            502,
            "upstream_auth_failed",
        ),
        ("submit-404", BflError(404, {"detail": "Not Found"}), 404, "model_unavailable"),
        (
            "submit-422",
            BflError(422, {"detail": [{"loc": ["body", "x"], "msg": "bad"}]}),
            400,
            None,
        ),
        ("submit-500", server_error(), 502, "upstream_error"),
        ("submit-hangup", Hangup(), 502, "upstream_error"),
        ("submit-slow", Delay(10, Accept()), 504, "upstream_timeout"),
        ("submit-malformed", Raw(b'{"id": "t", "polling_url": '), 502, "upstream_bad_response"),
        ("submit-declared-huge", Raw(b"{}", declared_length=2**40), 502, "upstream_bad_response"),
        ("task-error", Accept(statuses=("Pending", "Error")), 502, "upstream_error"),
        ("task-not-found", Accept(statuses=("Task not found",)), 502, "upstream_error"),
        (
            "task-moderated",
            Accept(statuses=("Request Moderated",)),
            400,
            "content_policy_violation",
        ),
        ("poll-malformed", Accept(statuses=(Raw(b"{{{"),)), 502, "upstream_bad_response"),
        (
            "poll-unknown-status",
            Accept(statuses=(Raw(b'{"status": "Melted"}'),)),
            502,
            "upstream_bad_response",
        ),
        ("poll-always-503", Accept(statuses=(BflError(503),)), 502, "upstream_error"),
        ("download-expired", _EXPIRED, 502, "upstream_error"),
        (
            "download-truncated",
            Accept(download=(Raw(b"\x89PNG\r\n", declared_length=4096),)),
            502,
            "upstream_bad_response",
        ),
        (
            "download-not-an-image",
            Accept(download=(Raw(b"<html/>", content_type="text/html"),)),
            502,
            "upstream_bad_response",
        ),
        (
            "download-declared-huge",
            Accept(download=(Raw(b"\xff\xd8\xff", declared_length=2**40),)),
            502,
            "upstream_bad_response",
        ),
    ]
    return [pytest.param(reply, status, code, id=name) for name, reply, status, code in rows]


@pytest.mark.parametrize(("reply", "status", "code"), _fault_matrix())
def test_fault_matrix(
    short_gateway: GatewayServer, bfl: FakeBfl, reply: Any, status: int, code: str | None
) -> None:
    if reply == _EXPIRED:
        bfl.sample_ttl = -1.0
    else:
        bfl.enqueue(reply)
    with (
        _client(short_gateway, max_retries=2) as client,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        client.images.generate(model=PRO, prompt="a fox")
    error = caught.value
    assert (error.status_code, error.code) == (status, code)
    assert error.response.headers["x-should-retry"] == "false"
    assert error.response.json()["error"]["type"]
    assert "SECRET-UPSTREAM-DETAIL" not in error.response.text
    assert len(bfl.submits()) == 1


def test_hostile_image_download_is_a_502_bad_response(oai: openai.OpenAI, bfl: FakeBfl) -> None:
    bfl.enqueue(Accept(download=(Raw(b"\xff\xd8\xff\xe0", declared_length=9_000_000_000),)))
    with pytest.raises(openai.InternalServerError) as caught:
        oai.images.generate(model=PRO, prompt="a fox")
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_bad_response"


def test_active_task_limit_is_a_429_with_retry_after(
    make_gateway: MakeGateway, bfl: FakeBfl
) -> None:
    bfl.enqueue(rate_limited(retry_after=30))
    # 30 s does not fit in the request's 5 s: the caller is told when to come back instead.
    client = _client(make_gateway(upstream_timeout_seconds=5))
    with client, pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(model=PRO, prompt="a fox")
    assert caught.value.response.headers["retry-after"] == "30"
    assert caught.value.response.headers["x-should-retry"] == "true"
    assert len(bfl.submits()) == 1


def test_a_short_429_is_retried_by_the_gateway(oai: openai.OpenAI, bfl: FakeBfl) -> None:
    bfl.enqueue(rate_limited(retry_after=1))
    response = oai.images.generate(model=PRO, prompt="a fox")
    assert response.data is not None
    assert len(response.data) == 1
    assert len(bfl.submits()) == 2  # refused (not billed), then accepted


def test_past_the_lambda_deadline_a_504_points_at_async_jobs(
    make_gateway: MakeGateway, bfl: FakeBfl
) -> None:
    bfl.default = Accept(statuses=("Pending",))
    # 2.5 s left in the invocation, 1 s kept for answering: BFL gets 1.5 s.
    gateway = make_gateway(lambda_ms=2_500, response_margin_seconds=1.0)
    with _client(gateway, max_retries=2) as client, pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model=PRO, prompt="a slow fox")
    assert caught.value.status_code == 504
    assert caught.value.code == "upstream_timeout"
    assert "respond-async" in caught.value.message
    assert "does not submit it again" in caught.value.message
    assert len(bfl.submits()) == 1
    assert len(bfl.polls()) >= 2


def test_as_an_async_job_it_runs_to_completion(gateway: GatewayServer, bfl: FakeBfl) -> None:
    bfl.default = Accept(statuses=("Pending",) * 10 + ("Ready",))
    with httpx.Client(base_url=gateway.base_url, headers=AUTH, timeout=30) as client:
        submitted = client.post(
            "/v1/images/generations",
            json={"model": PRO, "prompt": "a patient fox", "n": 2},
            headers={"Prefer": "respond-async"},
        )
        assert submitted.status_code == 202, submitted.text
        job = finished_job_over_http(submitted.headers["location"], AUTH)
        assert job["status"] == "succeeded", job
        links = [item["url"] for item in job["result"]["data"]]
        assert len(links) == 2
        for link in links:
            assert client.get(link).content == encode_image("1024x1024", "jpeg")
    assert len(bfl.submits()) == 2


# ------------------------------------------------------------------------------------ catalog


def test_models_list_bfl_with_capabilities_and_lifecycle(oai: openai.OpenAI) -> None:
    models = {model.id: model.model_dump() for model in oai.models.list()}
    pro = models[PRO]
    assert pro["owned_by"] == "black-forest-labs"
    assert pro["status"] == "active"
    assert "unconfirmed" in pro["capabilities"]["lifecycle_note"]
    assert pro["capabilities"]["free_size"]["multiple_of"] == 16
    assert pro["capabilities"]["n"] == {"min": 1, "max": 4}
    assert models["bfl/flux-kontext-pro"]["status"] == "legacy"
    assert models["bfl/flux-kontext-pro"]["capabilities"]["replacement"] == PRO
    assert models["bfl/flux-3-image"]["status"] == "disabled"
    assert models["bfl/flux-3.1-image"]["status"] == "disabled"
    for model_id in ("bfl/flux-2-max", "bfl/flux-2-klein-4b", "bfl/flux-pro-1.1-ultra"):
        assert models[model_id]["status"] in ("active", "legacy")


def test_a_disabled_model_is_refused_until_enabled(
    oai: openai.OpenAI, make_gateway: MakeGateway, bfl: FakeBfl
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.images.generate(model="bfl/flux-3-image", prompt="a fox")
    assert caught.value.code == "model_not_enabled"
    assert "IMAGEGW_ENABLED_MODELS" in caught.value.message
    assert bfl.requests == []
    enabled = make_gateway(enabled_models="bfl/flux-3-image")
    with _client(enabled) as client:
        response = client.images.generate(
            model="bfl/flux-3-image", prompt="a fox", size="1920x1080"
        )
    assert bfl.submits()[0].json == {"prompt": "a fox", "aspect_ratio": "16:9"}
    assert response.size == "1376x768"
    with _client(enabled) as client, pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="bfl/flux-3-image", prompt="a fox", extra_body={"seed": 1})
    assert refused.value.code == "unsupported_parameter"  # FLUX 3 takes no seed


def test_without_a_key_bfl_models_say_what_to_set(make_gateway: MakeGateway) -> None:
    client = _client(make_gateway(bfl_api_key=None))
    with client, pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model=PRO, prompt="a fox")
    assert caught.value.status_code == 503
    assert caught.value.code == "provider_not_configured"
    assert "BFL_API_KEY" in caught.value.message
