"""Amazon Bedrock: Stability's Stable Image Ultra, Stable Image Core and SD3.5 Large.

``build`` turns the provider's config (the environment, overlaid by the provider secret's
``bedrock`` entry) into a ``BedrockProvider``:

    region   the Region of the Bedrock endpoint (IMAGEGW_BEDROCK_REGION), independent of the
             function's own: the Stability generators are served in us-west-2 only

There is no key: calls are signed with the process's AWS credentials (the function's role, which
the template's BedrockRegion parameter allows to invoke exactly the catalog's models), and sent
over the shared HTTP client ``http``. ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (or
``AWS_ENDPOINT_URL``) replaces the endpoint, as for botocore.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from imagegw.errors import ProviderNotConfigured
from imagegw.providers.bedrock.provider import BedrockProvider

if TYPE_CHECKING:
    import httpx

    from imagegw.settings import Settings

# A Region name ends up in a host name: refuse anything else rather than build a surprising one.
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")

_NOT_CONFIGURED = (
    "The provider 'bedrock' is not configured: set IMAGEGW_BEDROCK_REGION (us-west-2 serves the "
    "Stability models), or 'region' in the provider secret's 'bedrock' entry; on AWS, deploy with "
    "the template's BedrockRegion parameter, which also allows the function to invoke the models."
)


def build(
    config: Mapping[str, Any], settings: Settings, http: httpx.AsyncClient
) -> BedrockProvider:
    region = config.get("region")
    region = region.strip() if isinstance(region, str) else None
    if not region:
        raise ProviderNotConfigured(_NOT_CONFIGURED)
    if not _REGION.match(region):
        raise ProviderNotConfigured(f"The Bedrock Region {region[:40]!r} is not a Region name.")
    return BedrockProvider(
        http, region, connect_timeout_seconds=settings.upstream_connect_timeout_seconds
    )


__all__ = ["BedrockProvider", "build"]
