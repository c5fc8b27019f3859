"""Black Forest Labs (FLUX) from the provider's config: the environment, overlaid by the provider
secret's ``bfl`` entry.

    api_key    the BFL key, sent as ``x-key`` (BFL_API_KEY)
    region     "global" (default), "eu" or "us": BFL's multi-cluster endpoints
               (IMAGEGW_BFL_REGION)
    base_url   another endpoint than the region's (BFL_BASE_URL): a proxy, a test double.
               An origin; a trailing ``/v1`` is accepted and dropped.

The legacy single-cluster hosts (``api.eu1``/``api.us1``) are not offered: BFL keeps them for
finetuning, and ``api.us1.bfl.ai/v1`` was switched off without notice in November 2025.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from imagegw.errors import ProviderNotConfigured
from imagegw.providers.bfl.provider import BflProvider
from imagegw.providers.bfl.task import Endpoint, Polling

if TYPE_CHECKING:
    from imagegw.settings import Settings

REGIONS = {
    "global": "https://api.bfl.ai",
    "eu": "https://api.eu.bfl.ai",
    "us": "https://api.us.bfl.ai",
}
DEFAULT_REGION = "global"


def build(config: Mapping[str, Any], settings: Settings, http: httpx.AsyncClient) -> BflProvider:
    api_key = _text(config.get("api_key"))
    if api_key is None:
        raise ProviderNotConfigured(
            "The provider 'bfl' is not configured: set BFL_API_KEY (or IMAGEGW_BFL_API_KEY), or "
            "add a 'bfl' entry with 'api_key' to the provider secret."
        )
    region = _text(config.get("region")) or DEFAULT_REGION
    if region not in REGIONS:
        raise ProviderNotConfigured(
            f"The BFL region {region[:40]!r} is not one of: {', '.join(REGIONS)}."
        )
    base_url = _base_url(_text(config.get("base_url")) or REGIONS[region])
    poll = settings.bfl_poll_seconds
    return BflProvider(
        http,
        Endpoint(base_url, api_key),
        polling=Polling(first_delay=poll, max_delay=4 * poll),
        connect_timeout_seconds=settings.upstream_connect_timeout_seconds,
    )


def _base_url(value: str) -> httpx.URL:
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ProviderNotConfigured(
            f"The BFL base URL {value[:80]!r} is not an http(s) URL (BFL_BASE_URL)."
        )
    path = url.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return url.copy_with(path=path or "/", query=None, fragment=None)


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
