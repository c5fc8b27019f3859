"""CORS: off unless origins are configured, then only for those origins."""

from __future__ import annotations

from fastapi.testclient import TestClient

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from conftest import AUTH

ALLOWED = "https://app.example.com"


def client_with(cors_origins: str, settings: Settings) -> TestClient:
    configured = settings.model_copy(update={"cors_origins": cors_origins})
    return TestClient(create_app(runtime=Runtime(configured)))


def preflight(client: TestClient, origin: str) -> dict[str, str]:
    response = client.options(
        "/v1/images/generations",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    return dict(response.headers)


def test_without_configured_origins_there_are_no_cors_headers(settings: Settings) -> None:
    with client_with("", settings) as client:
        headers = preflight(client, ALLOWED)
        listed = client.get("/v1/models", headers={**AUTH, "Origin": ALLOWED})
    assert "access-control-allow-origin" not in headers
    assert "access-control-allow-origin" not in listed.headers


def test_a_configured_origin_may_call_and_read_the_gateway_headers(settings: Settings) -> None:
    with client_with(f"{ALLOWED}, https://other.example.com", settings) as client:
        headers = preflight(client, ALLOWED)
        listed = client.get("/v1/models", headers={**AUTH, "Origin": ALLOWED})
    assert headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in headers["access-control-allow-headers"].lower()
    assert "POST" in headers["access-control-allow-methods"]
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in listed.headers["access-control-expose-headers"].lower()


def test_an_unlisted_origin_gets_no_permission(settings: Settings) -> None:
    with client_with(ALLOWED, settings) as client:
        headers = preflight(client, "https://evil.example.net")
    assert headers.get("access-control-allow-origin") != "https://evil.example.net"
    assert "access-control-allow-origin" not in headers
