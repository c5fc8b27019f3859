"""Settings (and the OPENAI_* variables every OpenAI tool reads) to a working provider."""

from __future__ import annotations

import httpx
import pytest

from imagegw.aws.credentials import environment_config
from imagegw.errors import ProviderNotConfigured
from imagegw.providers import build_provider
from imagegw.providers.base import ImageProvider
from imagegw.providers.local import LocalProvider
from imagegw.providers.openai import OpenAIProvider
from imagegw.settings import Settings
from providers.conftest import UPSTREAM_KEY, MakeRequest

from support.fake_openai import FakeOpenAI


def build_from_settings(name: str, settings: Settings, http: httpx.AsyncClient) -> ImageProvider:
    """What the runtime does without a provider secret: the environment's config."""
    return build_provider(name, environment_config(settings, name), settings, http)


def test_openai_without_a_key_names_the_setting_to_set() -> None:
    with pytest.raises(ProviderNotConfigured) as caught:
        build_from_settings("openai", Settings(), httpx.AsyncClient())
    assert caught.value.status == 503
    assert "OPENAI_API_KEY" in caught.value.message


def test_unknown_provider_is_not_configured() -> None:
    with pytest.raises(ProviderNotConfigured) as caught:
        build_from_settings("nope", Settings(), httpx.AsyncClient())
    assert "'nope'" in caught.value.message


def test_local_needs_no_settings() -> None:
    assert isinstance(build_from_settings("local", Settings(), httpx.AsyncClient()), LocalProvider)


@pytest.mark.anyio
async def test_key_and_base_url_from_the_openai_variables(
    monkeypatch: pytest.MonkeyPatch, make_request: MakeRequest
) -> None:
    # An OpenAI-compatible upstream under a path prefix, named the way every OpenAI tool does.
    with FakeOpenAI(prefix="/compat/openai/v1", expected_key=UPSTREAM_KEY) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
        async with httpx.AsyncClient() as http:
            provider = build_from_settings("openai", Settings(), http)
            assert isinstance(provider, OpenAIProvider)
            result = await provider.generate(make_request(n=2))
    assert len(result.images) == 2
    (sent,) = fake.requests
    assert sent.path == "/compat/openai/v1/images/generations"
    assert sent.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert sent.header("openai-organization") == "org-from-env"


@pytest.mark.anyio
async def test_gateway_prefixed_variables_configure_the_provider(
    monkeypatch: pytest.MonkeyPatch, make_request: MakeRequest
) -> None:
    with FakeOpenAI(expected_key=UPSTREAM_KEY) as fake:
        monkeypatch.setenv("IMAGEGW_OPENAI_API_KEY", UPSTREAM_KEY)
        monkeypatch.setenv("IMAGEGW_OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("IMAGEGW_OPENAI_ORGANIZATION", "org-prefixed")
        async with httpx.AsyncClient() as http:
            await build_from_settings("openai", Settings(), http).generate(make_request())
    (sent,) = fake.requests
    assert sent.header("openai-organization") == "org-prefixed"


@pytest.mark.anyio
async def test_settings_built_in_code_configure_every_upstream_field(
    make_request: MakeRequest,
) -> None:
    # Tests, the Lambda handler and operators' scripts build Settings by field name.
    with FakeOpenAI(expected_key=UPSTREAM_KEY) as fake:
        settings = Settings(
            openai_api_key=UPSTREAM_KEY,
            openai_base_url=fake.base_url,
            openai_organization="org-in-code",
        )
        async with httpx.AsyncClient() as http:
            await build_from_settings("openai", settings, http).generate(make_request())
    (sent,) = fake.requests
    assert sent.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert sent.header("openai-organization") == "org-in-code"
