"""Provider registry: provider name (as the catalog writes it) -> how to build one.

Implementations are imported only when first used, so a process that never serves a provider
never pays for its imports. Adding a provider is one line here plus its module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from imagegw.errors import ProviderNotConfigured
from imagegw.providers.base import GeneratedImage, ImageProvider, ImageRequest, ImageResult
from imagegw.redaction import remember_config

if TYPE_CHECKING:
    import httpx

    from imagegw.settings import Settings

# (the provider's config from its credential source, the settings, the shared HTTP client)
ProviderFactory = Callable[[Mapping[str, Any], "Settings", "httpx.AsyncClient"], ImageProvider]

# "module:function" of each provider's factory. The factory raises ProviderNotConfigured naming
# the missing field (and the variable that sets it) when the config cannot serve requests.
_FACTORIES: dict[str, str] = {
    "openai": "imagegw.providers.openai:build",
    "local": "imagegw.providers.local:build",
    "google": "imagegw.providers.google:build",
    "bedrock": "imagegw.providers.bedrock:build",
    "stability": "imagegw.providers.stability:build",
    "bfl": "imagegw.providers.bfl.config:build",
}


def build_provider(
    name: str, config: Mapping[str, Any], settings: Settings, http: httpx.AsyncClient
) -> ImageProvider:
    target = _FACTORIES.get(name)
    if target is None:
        raise ProviderNotConfigured(
            f"The provider '{name}' is not available in this deployment of the gateway."
        )
    # Whatever the provider holds (keys, service-account keys, tokens) is scrubbed from every
    # relayed message and error from now on (redaction.py), for every provider alike.
    remember_config(config)
    module_name, function_name = target.split(":")
    factory: ProviderFactory = getattr(importlib.import_module(module_name), function_name)
    return factory(config, settings, http)


__all__ = [
    "GeneratedImage",
    "ImageProvider",
    "ImageRequest",
    "ImageResult",
    "build_provider",
]
