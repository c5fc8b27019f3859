"""Google: Imagen on Vertex AI and the Gemini image models (Vertex AI or the Gemini API).

``build`` turns the provider's config (the environment, overlaid by the provider secret's
``google`` entry) into a ``GoogleProvider``:

    service_account        the key JSON, as an object or a JSON string (the provider secret)
    service_account_file   a path to it (GOOGLE_APPLICATION_CREDENTIALS)
    project                Vertex project (GOOGLE_CLOUD_PROJECT); default: the key's project_id
    location               Vertex region for Imagen (GOOGLE_CLOUD_LOCATION); default us-central1
    gemini_location        Vertex location for the Gemini models; default global
    api_key                Gemini API key (GEMINI_API_KEY), used when there is no service account
    vertex_base_url, gemini_base_url   other endpoints than Google's (tests, private endpoints)

With a service account everything goes through Vertex AI; with only an API key the Gemini models
go through the Gemini API and Imagen (Vertex-only) is refused with a 503 saying what to set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegw.errors import ProviderNotConfigured
from imagegw.providers.google.provider import GeminiApi, GoogleProvider, Vertex

if TYPE_CHECKING:
    import httpx

    from imagegw.settings import Settings

DEFAULT_LOCATION = "us-central1"
DEFAULT_GEMINI_LOCATION = "global"
# Names that end up in a URL path: refuse anything else rather than build a surprising URL.
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9.:-]{0,99}$")
_LOCATION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

_NOT_CONFIGURED = (
    "The provider 'google' is not configured: set GOOGLE_APPLICATION_CREDENTIALS (or "
    "IMAGEGW_GOOGLE_SERVICE_ACCOUNT_FILE) to a service-account key file for Vertex AI, or "
    "GEMINI_API_KEY (or IMAGEGW_GOOGLE_API_KEY) for the Gemini API; or add a 'google' entry with "
    "'service_account' or 'api_key' to the provider secret."
)


def build(config: Mapping[str, Any], settings: Settings, http: httpx.AsyncClient) -> GoogleProvider:
    info = _service_account(config)
    api_key = _text(config.get("api_key"))
    if info is None and api_key is None:
        raise ProviderNotConfigured(_NOT_CONFIGURED)
    vertex = _vertex(config, info, settings) if info is not None else None
    gemini_api = None
    if api_key is not None:
        base_url = _text(config.get("gemini_base_url"))
        gemini_api = GeminiApi(api_key, base_url.rstrip("/")) if base_url else GeminiApi(api_key)
    return GoogleProvider(
        http,
        vertex=vertex,
        gemini_api=gemini_api,
        connect_timeout_seconds=settings.upstream_connect_timeout_seconds,
    )


def _vertex(config: Mapping[str, Any], info: Mapping[str, Any], settings: Settings) -> Vertex:
    project = _text(config.get("project")) or _text(info.get("project_id"))
    if project is None:
        raise ProviderNotConfigured(
            "The provider 'google' is not configured: Vertex AI needs a project. Set "
            "GOOGLE_CLOUD_PROJECT (or IMAGEGW_GOOGLE_PROJECT), or 'project' in the provider "
            "secret's 'google' entry."
        )
    location = _text(config.get("location")) or DEFAULT_LOCATION
    gemini_location = _text(config.get("gemini_location")) or DEFAULT_GEMINI_LOCATION
    if not _PROJECT.match(project):
        raise ProviderNotConfigured(f"The Google project id {project!r} is not valid.")
    for name, value in (("location", location), ("gemini_location", gemini_location)):
        if not _LOCATION.match(value):
            raise ProviderNotConfigured(f"The Google {name} {value!r} is not valid.")
    # Imported here: google-auth is loaded only by a process that serves Vertex AI.
    from imagegw.providers.google.tokens import ServiceAccountTokens

    tokens = ServiceAccountTokens(
        info, connect_timeout_seconds=settings.upstream_connect_timeout_seconds
    )
    base_url = _text(config.get("vertex_base_url"))
    return Vertex(
        project=project,
        location=location,
        gemini_location=gemini_location,
        tokens=tokens,
        base_url=base_url.rstrip("/") if base_url else None,
    )


def _service_account(config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = config.get("service_account")
    origin = "the provider secret's 'google.service_account'"
    if value is None and config.get("service_account_file"):
        path = Path(str(config["service_account_file"]))
        origin = f"the service account file {path} (GOOGLE_APPLICATION_CREDENTIALS)"
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProviderNotConfigured(
                f"The provider 'google' is not configured: {origin} cannot be read "
                f"({exc.strerror or type(exc).__name__})."
            ) from None
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            # Never echo the text: it holds a private key.
            raise ProviderNotConfigured(
                f"The provider 'google' is not configured: {origin} is not valid JSON."
            ) from None
    if not isinstance(value, Mapping):
        raise ProviderNotConfigured(
            f"The provider 'google' is not configured: {origin} is not a JSON object."
        )
    if value.get("type", "service_account") != "service_account":
        raise ProviderNotConfigured(
            f"The provider 'google' is not configured: {origin} is not a service-account key "
            f"(its type is {str(value.get('type'))[:40]!r})."
        )
    return value


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


__all__ = ["GoogleProvider", "build"]
