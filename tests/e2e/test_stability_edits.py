"""Stability edits end to end: client.images.edit -> gateway (uvicorn) -> the fake Stability API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.edit_images import gradient
from support.fake_stability import API_KEY, FakeStability
from support.fakes import FakeClock
from support.servers import GatewayServer


@pytest.fixture
def stability() -> Iterator[FakeStability]:
    with FakeStability() as fake:
        yield fake
    assert fake.handler_errors == []


def test_the_openai_client_edits_through_stability(
    stability: FakeStability, tmp_path: Path
) -> None:
    """End to end: client.images.edit -> gateway (uvicorn) -> the fake Stability API."""
    settings = Settings(
        api_keys="sk-client-test",
        local_storage_dir=tmp_path / "images",
        url_signing_secret="e2e-signing-secret",
        stability_api_key=API_KEY,
        stability_base_url=stability.origin,
    )
    runtime = Runtime(settings, clock=FakeClock())
    source = gradient(64, 48)
    with (
        GatewayServer(create_app(runtime=runtime), runtime=runtime) as gateway,
        openai.OpenAI(
            base_url=gateway.base_url + "/v1", api_key="sk-client-test", max_retries=0
        ) as client,
    ):
        response = client.images.edit(
            model="stability/sd3.5-large", image=("a.png", source, "image/png"), prompt="winter"
        )
        with pytest.raises(openai.BadRequestError) as caught:
            client.images.edit(
                model="stability/sd3.5-large",
                image=[source, source],
                prompt="two are too many",
            )

    ((endpoint, fields),) = stability.accepted
    assert (endpoint, fields["mode"]) == ("sd3", "image-to-image")
    assert response.data[0].b64_json
    assert caught.value.code == "too_many_images"
