"""The Stability AI REST API (v2beta): Stable Image Ultra and Core, SD3.5 Large, Large Turbo and
Medium, for accounts or Regions that do not use Amazon Bedrock.

``build`` turns the provider's config (the environment, overlaid by the provider secret's
``stability`` entry) into a ``StabilityProvider``:

    api_key    Stability's key, sent as ``Authorization: Bearer`` (STABILITY_API_KEY)
    base_url   another endpoint than https://api.stability.ai (STABILITY_BASE_URL)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imagegw.errors import ProviderNotConfigured
from imagegw.providers.stability.provider import DEFAULT_BASE_URL, StabilityProvider

if TYPE_CHECKING:
    import httpx

    from imagegw.settings import Settings


def build(
    config: Mapping[str, Any], settings: Settings, http: httpx.AsyncClient
) -> StabilityProvider:
    api_key = config.get("api_key")
    if not isinstance(api_key, str) or not api_key.strip():
        raise ProviderNotConfigured(
            "The provider 'stability' is not configured: set STABILITY_API_KEY (and "
            "STABILITY_BASE_URL for another endpoint), or add a 'stability' entry with 'api_key' "
            "to the provider secret."
        )
    base_url = config.get("base_url")
    if not isinstance(base_url, str) or not base_url.strip():
        base_url = DEFAULT_BASE_URL
    if not base_url.startswith(("https://", "http://")):
        raise ProviderNotConfigured(
            f"The Stability base URL {base_url[:60]!r} is not an http(s) URL."
        )
    return StabilityProvider(
        http,
        api_key=api_key.strip(),
        base_url=base_url.strip(),
        connect_timeout_seconds=settings.upstream_connect_timeout_seconds,
    )


__all__ = ["StabilityProvider", "build"]
