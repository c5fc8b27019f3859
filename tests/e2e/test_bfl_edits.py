"""FLUX edits through the official openai client: images.edit reaches BFL as input images."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from e2e.conftest import CLIENT_KEY
from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.edit_images import alpha_mask, gradient
from support.fake_bfl import FakeBfl
from support.fakes import FakeClock
from support.servers import GatewayServer


@pytest.fixture
def bfl() -> Iterator[FakeBfl]:
    with FakeBfl() as fake:
        yield fake
    assert fake.handler_errors == []


@pytest.fixture
def oai(bfl: FakeBfl, tmp_path: Path) -> Iterator[openai.OpenAI]:
    settings = Settings(
        api_keys=CLIENT_KEY,
        local_storage_dir=tmp_path / "images",
        url_signing_secret="e2e-signing-secret",
        bfl_api_key=bfl.api_key,
        bfl_base_url=bfl.origin,
        bfl_poll_seconds=0.02,
    )
    runtime = Runtime(settings, clock=FakeClock())
    with (
        GatewayServer(create_app(runtime=runtime), runtime=runtime) as gateway,
        openai.OpenAI(
            base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30
        ) as client,
    ):
        yield client


def test_flux_2_edit_sends_the_images_as_input_images(oai: openai.OpenAI, bfl: FakeBfl) -> None:
    first, second = gradient(64, 48), gradient(32, 32)

    response = oai.images.edit(
        model="bfl/flux-2-pro",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        prompt="the cat from image 2 on the sofa of image 1",
        size="1024x768",
    )

    (submit,) = bfl.submits()
    assert submit.json["input_image"] == base64.b64encode(first).decode()
    assert submit.json["input_image_2"] == base64.b64encode(second).decode()
    assert (submit.json["width"], submit.json["height"]) == (1024, 768)
    assert response.data[0].b64_json
    assert response.model == "bfl/flux-2-pro"  # type: ignore[attr-defined]


def test_a_mask_for_flux_2_is_refused_naming_it(oai: openai.OpenAI, bfl: FakeBfl) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.images.edit(
            model="bfl/flux-2-pro",
            image=("a.png", gradient(), "image/png"),
            mask=("m.png", alpha_mask(change=(0, 0, 8, 8)), "image/png"),
            prompt="x",
        )

    assert caught.value.param == "mask"
    assert bfl.submits() == []
