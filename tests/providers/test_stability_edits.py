"""Stability edits on the wire: image-to-image on the Stability API (a file part) and on Bedrock
(base64 in InvokeModel's body), checked by the fakes as Stability checks them."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from imagegw.generation.input_images import InputLimits, inspect_image
from imagegw.providers import build_provider
from imagegw.providers.bedrock.provider import BedrockProvider
from imagegw.providers.inputs import InputImage
from imagegw.providers.stability.provider import StabilityProvider
from imagegw.settings import Settings
from providers.conftest import MakeRequest

from support import fake_bedrock
from support.edit_images import gradient
from support.fake_bedrock import FakeBedrock
from support.fake_openai import parse_form
from support.fake_stability import API_KEY, FakeStability

LIMITS = InputLimits(max_bytes=10**7, max_total_bytes=10**8, max_pixels=10**8)


def _input(data: bytes) -> InputImage:
    return inspect_image(data, param="image", limits=LIMITS)


@pytest.fixture
def stability() -> Iterator[FakeStability]:
    with FakeStability() as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture
async def stability_provider(stability: FakeStability) -> AsyncIterator[StabilityProvider]:
    async with httpx.AsyncClient() as http:
        built = build_provider(
            "stability", {"api_key": API_KEY, "base_url": stability.origin}, Settings(), http
        )
        assert isinstance(built, StabilityProvider)
        yield built


@pytest.mark.anyio
async def test_sd3_edit_is_image_to_image_with_the_image_as_a_file(
    stability: FakeStability, stability_provider: StabilityProvider, make_request: MakeRequest
) -> None:
    image = _input(gradient(64, 48))
    request = make_request("stability/sd3.5-large", prompt="make it winter", images=(image,))

    result = await stability_provider.generate(request)

    ((endpoint, fields),) = stability.accepted
    assert endpoint == "sd3"
    assert "aspect_ratio" not in fields  # the output follows the input
    assert (fields["mode"], fields["strength"], fields["model"]) == (
        "image-to-image",
        "0.6",
        "sd3.5-large",
    )
    (sent,) = stability.requests
    form = parse_form(sent.header("content-type") or "", sent.body)
    assert form is not None
    (file,) = [part for part in form if part.filename is not None]
    assert (file.name, file.filename, file.content_type) == ("image", "image.png", "image/png")
    assert file.data == image.data
    assert len(result.images) == 1


@pytest.mark.anyio
async def test_ultra_edit_sends_strength_but_no_mode(
    stability: FakeStability, stability_provider: StabilityProvider, make_request: MakeRequest
) -> None:
    request = make_request("stability/stable-image-ultra", prompt="x", images=(_input(gradient()),))

    await stability_provider.generate(request)

    ((endpoint, fields),) = stability.accepted
    assert endpoint == "ultra"
    assert "mode" not in fields
    assert fields["strength"] == "0.6"


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as fake:
        for name in fake_bedrock.CLEARED:
            monkeypatch.delenv(name, raising=False)
        for name, value in fake_bedrock.environment(fake).items():
            monkeypatch.setenv(name, value)
        yield fake
    assert fake.handler_errors == []


@pytest.mark.anyio
async def test_bedrock_sd35_edit_is_image_to_image_in_the_invoke_body(
    bedrock: FakeBedrock, make_request: MakeRequest
) -> None:
    image = _input(gradient(64, 48))
    async with httpx.AsyncClient() as http:
        provider = BedrockProvider(http, "us-west-2", connect_timeout_seconds=2)
        result = await provider.generate(
            make_request("bedrock/sd3.5-large", prompt="make it winter", images=(image,))
        )

    (sent,) = bedrock.calls()
    assert sent.json == {
        "prompt": "make it winter",
        "mode": "image-to-image",
        "image": base64.b64encode(image.data).decode(),
        "strength": 0.6,
    }
    assert len(result.images) == 1
