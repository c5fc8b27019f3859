"""Helpers of the Lambda layer: the sample events, a Lambda context, reading responses.

Not a conftest.py on purpose: a second module named ``conftest`` would shadow tests/conftest.py
for the ``from conftest import ...`` lines of the other layers. The fixtures are in
lambda_fixtures.py.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
DEV_API_KEY = "sk-imagegw-dev"

GENERATE_EVENTS = ("rest-v1-generate", "http-v2-generate", "function-url-generate")
V2_EVENTS = ("http-v2-generate", "function-url-generate")
# Samples of the other ways the functions are invoked (handler: gateway; sqs: the worker).
NON_HTTP_EVENTS = ("eventbridge-generate", "invoke-generate", "sqs-generate")
# The same three carrying an edit ("action": "edit"; tests/lambda/test_edit_job_events.py).
EDIT_EVENTS = ("eventbridge-edit", "invoke-edit", "sqs-edit")


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return event


def header(response: dict[str, Any], name: str) -> str | None:
    """A response header, however the payload version carries it (case-insensitive)."""
    for key, value in response.get("headers", {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in response.get("multiValueHeaders", {}).items():
        if key.lower() == name.lower() and values:
            return str(values[0])
    return None


def response_body(response: dict[str, Any]) -> bytes:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        return base64.b64decode(body)
    return str(body).encode("utf-8")


def with_authorization(event: dict[str, Any], value: str | None) -> dict[str, Any]:
    """A copy of the event with its Authorization header replaced (or removed, for None)."""
    changed = copy.deepcopy(event)
    for field in ("headers", "multiValueHeaders"):
        if field not in changed:
            continue
        headers = changed[field]
        names = [name for name in headers if name.lower() == "authorization"]
        assert names, f"the sample event has no Authorization in {field}"
        for name in names:
            if value is None:
                del headers[name]
            else:
                headers[name] = [value] if field == "multiValueHeaders" else value
    return changed


class FakeLambdaContext:
    """What the Python Lambda runtime passes as ``context``."""

    def __init__(self, request_id: str = "8a7f1d3c-0b2e-4c5d-9e6f-1a2b3c4d5e6f") -> None:
        self.function_name = "imagegw-dev-GatewayFunction"
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            "arn:aws:lambda:us-east-1:123456789012:function:imagegw-dev-GatewayFunction"
        )
        self.memory_limit_in_mb = 1024
        self.aws_request_id = request_id
        self.log_group_name = "/aws/lambda/imagegw-dev-GatewayFunction"
        self.log_stream_name = "2026/11/22/[$LATEST]0123456789abcdef0123456789abcdef"
        self.identity = None
        self.client_context = None

        self.remaining_ms = 29_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
