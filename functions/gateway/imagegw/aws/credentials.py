"""Where provider credentials come from: the environment locally, Secrets Manager on AWS.

Each provider reads one flat mapping (its *config*). Locally the mapping is built from settings
(``OPENAI_API_KEY`` ...). When ``IMAGEGW_PROVIDER_SECRET_ID`` names a secret, the provider's entry
in that JSON object is laid over the environment's values, so the secret wins and a rotated key
is used within the secret's time-to-live. The layout (docs/configuration.md, "AWS: secrets and S3"):

    {"openai": {"api_key": "sk-...", "base_url": "https://...", "organization": "org-..."},
     "google": {"service_account": {...} | "<json>", "project": "...", "location": "us-central1",
                "api_key": "...", "gemini_location": "global"},
     "bedrock": {"region": "us-west-2"},
     "stability": {"api_key": "sk-...", "base_url": "https://api.stability.ai"},
     "bfl": {"api_key": "bfl_...", "region": "global" | "eu" | "us", "base_url": "https://..."}}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from imagegw.aws.secrets_cache import CachedSecret
from imagegw.settings import Settings

ProviderConfig = Mapping[str, Any]


class CredentialSource(ABC):
    @abstractmethod
    async def config(self, provider: str) -> ProviderConfig:
        """The provider's settings; an empty mapping when nothing is configured for it."""


class EnvironmentCredentials(CredentialSource):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def config(self, provider: str) -> ProviderConfig:
        return environment_config(self._settings, provider)


class SecretCredentials(CredentialSource):
    """The provider secret's entry over the environment's values."""

    def __init__(self, secret: CachedSecret, settings: Settings) -> None:
        self._secret = secret
        self._settings = settings

    async def config(self, provider: str) -> ProviderConfig:
        document = await self._secret.value()
        entry = document.get(provider)
        merged = dict(environment_config(self._settings, provider))
        if isinstance(entry, Mapping):
            merged.update({key: value for key, value in entry.items() if value is not None})
        return merged


def environment_config(settings: Settings, provider: str) -> ProviderConfig:
    values: dict[str, Any]
    if provider == "openai":
        values = {
            "api_key": _plain(settings.openai_api_key),
            "base_url": settings.openai_base_url,
            "organization": settings.openai_organization,
        }
    elif provider == "google":
        values = {
            "service_account_file": settings.google_service_account_file,
            "project": settings.google_project,
            "location": settings.google_location,
            "api_key": _plain(settings.google_api_key),
            "gemini_location": settings.google_gemini_location,
            "vertex_base_url": settings.google_vertex_base_url,
            "gemini_base_url": settings.google_gemini_base_url,
        }
    elif provider == "bedrock":
        values = {"region": settings.bedrock_region}
    elif provider == "stability":
        values = {
            "api_key": _plain(settings.stability_api_key),
            "base_url": settings.stability_base_url,
        }
    elif provider == "bfl":
        values = {
            "api_key": _plain(settings.bfl_api_key),
            "region": settings.bfl_region,
            "base_url": settings.bfl_base_url,
        }
    else:
        values = {}
    return {key: value for key, value in values.items() if value is not None}


def _plain(secret: Any) -> str | None:
    return None if secret is None else str(secret.get_secret_value())
