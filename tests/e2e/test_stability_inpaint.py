"""Stability inpainting end to end: the unchanged openai client's ``images.edit`` with a mask ->
the gateway under uvicorn -> Stability's inpainting service, on its own API (a multipart-checking
fake) and on Amazon Bedrock (a SigV4-checking fake reached by real boto3, through the ``us.``
inference profile).

Both models only edit: a generation sent to them is a 400 that says so, before any upstream call.
OpenAI's mask (alpha 0 = change) arrives upstream as Stability's (white = change), pixel by pixel.
"""

from __future__ import annotations

import base64
import contextlib
import io
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
from imagegw.settings import Settings

from support import fake_bedrock, fake_stability
from support.edit_images import encoded, gradient
from support.fake_bedrock import FakeBedrock
from support.fake_stability import FakeStability
from support.fakes import FakeClock
from support.jobs import finished_job_over_http
from support.scripted_http import Hangup
from support.servers import GatewayServer

MakeGateway = Callable[..., GatewayServer]
WIDTH, HEIGHT = 96, 64


@dataclass(frozen=True)
class Upstream:
    name: str
    model: str
    fake: FakeBedrock | FakeStability
    filtered: Any  # a reply whose image a filter withheld
    server_error: Any  # an ambiguous failure after the call was sent
    throttled: Any  # a refusal that proves nothing ran

    def calls(self) -> int:
        return len(self.fake.requests)

    def masks(self) -> list[bytes]:
        """The mask of every accepted call, as the upstream received it."""
        if isinstance(self.fake, FakeStability):
            return [files["mask"] for files in self.fake.files]
        return [
            base64.b64decode((request.json or {})["mask"])
            for request in self.fake.calls(fake_bedrock.INPAINT_PROFILE)
        ]

    def fields(self) -> list[dict[str, Any]]:
        """The parameters of every accepted call (files and base64 left out)."""
        if isinstance(self.fake, FakeStability):
            return [
                {k: v for k, v in fields.items() if k not in ("image", "mask")}
                for _, fields in self.fake.accepted
            ]
        return [
            {k: v for k, v in (request.json or {}).items() if k not in ("image", "mask")}
            for request in self.fake.calls(fake_bedrock.INPAINT_PROFILE)
        ]


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


@pytest.fixture(params=["stability", "bedrock"])
def upstream(
    request: pytest.FixtureRequest, bedrock: FakeBedrock, stability: FakeStability
) -> Upstream:
    if request.param == "bedrock":
        return Upstream(
            "bedrock",
            "bedrock/stable-image-inpaint",
            bedrock,
            fake_bedrock.Filtered("Filter reason: output image"),
            fake_bedrock.AwsError(500, "InternalServerException", "SECRET-UPSTREAM-DETAIL"),
            fake_bedrock.throttled(),
        )
    return Upstream(
        "stability",
        "stability/stable-image-inpaint",
        stability,
        fake_stability.ContentFiltered(),
        fake_stability.StabilityError(500, "internal_error", ["SECRET-UPSTREAM-DETAIL"]),
        fake_stability.StabilityError(429, "rate_limit_exceeded", ["slow"], {"Retry-After": "0.1"}),
    )


@pytest.fixture(scope="module")
def make_gateway(
    bedrock: FakeBedrock, stability: FakeStability, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeGateway]:
    directory = tmp_path_factory.mktemp("inpaint-e2e")
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


@pytest.fixture
def oai(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30
    ) as client:
        yield client


def _mask() -> bytes:
    """OpenAI's mask: keep (alpha 255) on the left, change (alpha 0) on the right, and a
    feathered band between, so the conversion is checked on partial values too."""
    image = Image.new("RGBA", (WIDTH, HEIGHT), (0, 0, 0, 255))
    for x in range(WIDTH):
        alpha = 255 if x < 32 else 0 if x >= 64 else 255 - (x - 32) * 8
        for y in range(HEIGHT):
            image.putpixel((x, y), (0, 0, 0, alpha))
    return encoded(image)


def _white_for_change(mask: bytes) -> bytes:
    with Image.open(io.BytesIO(mask)) as image:
        return bytes(255 - value for value in image.getchannel("A").tobytes())


def _edit(oai: openai.OpenAI, model: str, **params: Any) -> Any:
    return oai.images.edit(
        model=model,
        image=("room.png", gradient(WIDTH, HEIGHT), "image/png"),
        mask=("mask.png", _mask(), "image/png"),
        prompt="a red door",
        **params,
    )


# ------------------------------------------------------------------------------------ success


def test_the_openai_client_inpaints_with_a_mask(oai: openai.OpenAI, upstream: Upstream) -> None:
    response = _edit(oai, upstream.model)

    (item,) = response.data
    assert item.b64_json is not None
    with Image.open(io.BytesIO(base64.b64decode(item.b64_json))) as image:
        assert image.size == (WIDTH, HEIGHT)  # the output keeps the input's size
    assert response.size == f"{WIDTH}x{HEIGHT}"
    (mask,) = upstream.masks()
    with Image.open(io.BytesIO(mask)) as received:
        assert (received.format, received.mode, received.size) == ("PNG", "L", (WIDTH, HEIGHT))
        assert received.tobytes() == _white_for_change(_mask())
    assert upstream.calls() == 1


def test_url_delivery_and_extensions(oai: openai.OpenAI, upstream: Upstream) -> None:
    response = _edit(
        oai,
        upstream.model,
        n=2,
        response_format="url",
        output_format="jpeg",
        extra_body={"seed": 42, "negative_prompt": "graffiti", "grow_mask": 0},
    )

    assert len(response.data) == 2
    # Priced per delivered image (docs/costs.md): 5 credits on Stability's API, 0.07 on Bedrock.
    price = {"stability": 0.1, "bedrock": 0.14}[upstream.name]
    cost = (response.model_extra or {})["cost"]
    assert (cost["amount"], cost["currency"], cost["estimated"]) == (price, "USD", True)
    for item in response.data:
        assert item.b64_json is None
        assert item.url is not None
        fetched = httpx.get(item.url)
        assert fetched.status_code == 200
        assert fetched.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(fetched.content)).size == (WIDTH, HEIGHT)
    # n images of one seed are variations: seed + i (providers/fanout.variation_seed).
    wire: Any = {"stability": str, "bedrock": int}[upstream.name]
    grow = wire(0)
    assert sorted(upstream.fields(), key=lambda fields: int(fields["seed"])) == [
        {
            "prompt": "a red door",
            "negative_prompt": "graffiti",
            "seed": wire(seed),
            "grow_mask": grow,
            "output_format": "jpeg",
        }
        for seed in (42, 43)
    ]


def test_a_streamed_inpaint_sends_the_completed_event(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    events = list(_edit(oai, upstream.model, stream=True))

    assert [event.type for event in events] == ["image_edit.completed"]
    (completed,) = events
    with Image.open(io.BytesIO(base64.b64decode(completed.b64_json))) as image:
        assert image.size == (WIDTH, HEIGHT)
    (mask,) = upstream.masks()
    assert Image.open(io.BytesIO(mask)).tobytes() == _white_for_change(_mask())


def test_an_edit_job_inpaints_too(gateway: GatewayServer, upstream: Upstream) -> None:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}", "Prefer": "respond-async"}
    submitted = httpx.post(
        gateway.base_url + "/v1/images/edits",
        data={"model": upstream.model, "prompt": "a red door"},
        files=[
            ("image", ("room.png", gradient(WIDTH, HEIGHT), "image/png")),
            ("mask", ("mask.png", _mask(), "image/png")),
        ],
        headers=headers,
    )
    assert submitted.status_code == 202, submitted.text
    view = finished_job_over_http(
        submitted.headers["location"], {"Authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert view["status"] == "succeeded", view
    assert view["result"]["size"] == f"{WIDTH}x{HEIGHT}"
    (mask,) = upstream.masks()
    assert Image.open(io.BytesIO(mask)).tobytes() == _white_for_change(_mask())


# ------------------------------------------------------------------------------------ refused


def test_a_generation_is_a_400_saying_the_model_only_edits(
    oai: openai.OpenAI, gateway: GatewayServer, upstream: Upstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.generate(model=upstream.model, prompt="a red door")
    error = caught.value
    assert error.code == "model_only_edits"
    assert error.body is not None
    assert error.body["param"] == "model"  # type: ignore[index]
    assert upstream.model in error.message
    assert "only edits" in error.message
    assert "/v1/images/edits" in error.message

    # Streamed and as a job: the same 400, before anything is streamed or queued.
    for headers, body in (
        ({}, {"stream": True}),
        ({"Prefer": "respond-async"}, {"response_format": "url"}),
    ):
        response = httpx.post(
            gateway.base_url + "/v1/images/generations",
            json={"model": upstream.model, "prompt": "a red door", **body},
            headers={"Authorization": f"Bearer {CLIENT_KEY}", **headers},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "model_only_edits"
    assert upstream.calls() == 0


def test_an_edit_without_a_mask_is_a_400_naming_mask(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.edit(
            model=upstream.model,
            image=("room.png", gradient(WIDTH, HEIGHT), "image/png"),
            prompt="a red door",
        )
    assert caught.value.code == "missing_required_parameter"
    assert caught.value.body["param"] == "mask"  # type: ignore[index]
    assert upstream.calls() == 0


def test_a_size_is_refused_because_the_output_keeps_the_inputs(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _edit(oai, upstream.model, size="1024x1024")
    assert caught.value.code == "unsupported_parameter"
    assert upstream.calls() == 0


def test_models_publish_edit_only_with_a_required_mask(oai: openai.OpenAI) -> None:
    listed = {model.id: model.model_dump() for model in oai.models.list()}
    for model_id in ("stability/stable-image-inpaint", "bedrock/stable-image-inpaint"):
        capabilities = listed[model_id]["capabilities"]
        assert capabilities["generations"] is False
        assert capabilities["edits"] == {
            "max_input_images": 1,
            "mask": True,
            "mask_required": True,
            "input_fidelities": [],
        }
        assert capabilities["sizes"] == []
        assert {"seed", "negative_prompt", "grow_mask"} <= set(capabilities["parameters"])
        assert capabilities["ranges"]["grow_mask"] == {"min": 0, "max": 100}
        assert capabilities["price"]["per_image"]
    assert listed["stability/stable-image-core"]["capabilities"]["generations"] is True


# ------------------------------------------------------------------------------------ errors


def test_a_rate_limited_call_is_retried_because_nothing_ran(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    upstream.fake.enqueue(upstream.throttled)
    response = _edit(oai, upstream.model)
    assert len(response.data) == 1
    assert upstream.calls() == 2


@pytest.mark.parametrize("kind", ["server-error", "hangup"])
def test_an_ambiguous_failure_is_never_sent_again(
    oai: openai.OpenAI, upstream: Upstream, kind: str
) -> None:
    upstream.fake.default = upstream.server_error if kind == "server-error" else Hangup()
    with pytest.raises(openai.APIStatusError) as caught:
        _edit(oai, upstream.model)
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.response.text
    assert upstream.calls() == 1


def test_a_filtered_result_is_a_content_policy_violation(
    oai: openai.OpenAI, upstream: Upstream
) -> None:
    upstream.fake.default = upstream.filtered
    with pytest.raises(openai.BadRequestError) as caught:
        _edit(oai, upstream.model)
    assert caught.value.code == "content_policy_violation"
    assert upstream.calls() == 1


def test_bedrock_model_access_for_the_image_services_is_said(
    oai: openai.OpenAI, bedrock: FakeBedrock
) -> None:
    bedrock.default = fake_bedrock.access_denied()
    with pytest.raises(openai.APIStatusError) as caught:
        _edit(oai, "bedrock/stable-image-inpaint")
    assert caught.value.status_code == 503
    assert caught.value.code == "bedrock_model_access_denied"
    assert "us.stability.stable-image-inpaint-v1:0" in caught.value.message
    assert "SECRET-UPSTREAM-DETAIL" not in caught.value.message
