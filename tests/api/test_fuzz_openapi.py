"""Schemathesis against the gateway's own OpenAPI document, in-process: no 5xx, ever.

Hypothesis generates requests for every operation the document lists, both ones that fit the
schema and ones that break it (wrong types, missing fields, odd strings), with and without a key.
Every answer is below 500, and every error is OpenAI's four-key envelope. Examples are bounded
so the run stays a few seconds; the upstream is the in-process fake provider.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from conftest import AUTH

# The document depends only on the routes, so it comes from an app that is never served; the
# requests go to the test's own app (fake provider, fixed clock) through its TestClient.
_DOCUMENT: dict[str, Any] = create_app(runtime=Runtime(Settings(api_keys="unused"))).openapi()
schema = schemathesis.openapi.from_dict(_DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_makes_the_gateway_fail(case: schemathesis.Case, client: TestClient) -> None:
    for headers in (AUTH, {}):
        sent = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        response = client.request(
            sent.pop("method"),
            sent.pop("url"),
            headers=sent.get("headers"),
            params=sent.get("params"),
            content=_content(sent),
        )
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"}, body
            assert set(body["error"]) == {"message", "type", "param", "code"}, body
            assert isinstance(body["error"]["message"], str)
            assert body["error"]["message"]
        assert response.headers["x-request-id"].startswith("req_")


def _content(sent: dict[str, Any]) -> bytes | None:
    if "json" in sent:
        return json.dumps(sent["json"]).encode()
    data = sent.get("data")
    if isinstance(data, str):
        return data.encode()
    return data if isinstance(data, bytes) else None
