"""Every caller-visible error renders OpenAI's four-key envelope; retry advice is deliberate."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import imagegw
from imagegw import errors
from imagegw.errors import (
    GatewayError,
    IdempotencyInProgress,
    LinkRefused,
    MethodNotAllowed,
    RateLimited,
    ReplayedError,
    SecretUnavailable,
    StateUnavailable,
    UnsupportedParameter,
    UpstreamUnreachable,
)


def _all_error_classes() -> list[type[GatewayError]]:
    found: list[type[GatewayError]] = [GatewayError]
    pending = [GatewayError]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass not in found:
                found.append(subclass)
                pending.append(subclass)
    return found


# ReplayedError takes its status and type from stored data (test_idempotency.py covers it).
ERROR_CLASSES = [cls for cls in _all_error_classes() if cls is not ReplayedError]
# Nothing was generated (refused, never sent, or stopped before the upstream call), or the same
# request is still running and its answer will be replayed.
RETRYABLE = {
    RateLimited,
    UpstreamUnreachable,
    StateUnavailable,
    IdempotencyInProgress,
    SecretUnavailable,
}


def test_every_error_class_of_the_package_is_defined_in_errors_and_drawn_in_its_tree() -> None:
    for module in pkgutil.walk_packages(imagegw.__path__, "imagegw."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    classes = _all_error_classes()
    assert {MethodNotAllowed, LinkRefused, UnsupportedParameter} <= set(classes)
    outside = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in classes
        if cls.__module__ != "imagegw.errors"
    )
    assert outside == []
    tree = errors.__doc__ or ""
    drawn = [cls for cls in classes if cls is GatewayError or f"── {cls.__name__} " in tree]
    assert sorted(cls.__name__ for cls in set(classes) - set(drawn)) == []


def test_the_tree_is_complete() -> None:
    names = {cls.__name__ for cls in ERROR_CLASSES}
    assert {
        "InvalidRequest",
        "UnknownParameter",
        "MissingParameter",
        "InvalidType",
        "InvalidValue",
        "PromptTooLong",
        "MalformedBody",
        "ContentPolicyViolation",
        "AuthenticationFailed",
        "PermissionDenied",
        "ModelNotFound",
        "ModelRetired",
        "ModelUnavailable",
        "PayloadTooLarge",
        "UnsupportedMediaType",
        "RateLimited",
        "UpstreamError",
        "UpstreamUnreachable",
        "UpstreamAuthFailed",
        "UpstreamBadResponse",
        "ProviderNotConfigured",
        "StorageUnavailable",
        "UpstreamTimeout",
        "UnsupportedParameter",
        "LinkRefused",
        "MethodNotAllowed",
    } <= names


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_renders_the_four_key_envelope(cls: type[GatewayError]) -> None:
    error = cls("Something specific went wrong.", param="size")
    rendered = json.loads(errors.render(error))
    assert rendered == {
        "error": {
            "message": "Something specific went wrong.",
            "type": cls.error_type,
            "param": "size",
            "code": cls.default_code,
        }
    }
    assert isinstance(cls.error_type, str)
    assert cls.error_type
    assert 400 <= cls.status <= 599


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_param_and_code_may_be_null_but_are_always_present(cls: type[GatewayError]) -> None:
    error = cls("Nope.")
    body = json.loads(errors.render(error))
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] is None


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_should_retry_only_when_nothing_can_have_been_billed(cls: type[GatewayError]) -> None:
    headers = cls("x").response_headers()
    expected = "true" if cls in RETRYABLE else "false"
    assert headers["x-should-retry"] == expected


@pytest.mark.parametrize(
    ("cls", "status", "error_type", "code"),
    [
        (errors.InvalidRequest, 400, "invalid_request_error", None),
        (errors.UnknownParameter, 400, "invalid_request_error", "unknown_parameter"),
        (errors.MissingParameter, 400, "invalid_request_error", "missing_required_parameter"),
        (errors.InvalidType, 400, "invalid_request_error", "invalid_type"),
        (errors.InvalidValue, 400, "invalid_request_error", "invalid_value"),
        (errors.PromptTooLong, 400, "invalid_request_error", "string_above_max_length"),
        (errors.MalformedBody, 400, "invalid_request_error", "invalid_json"),
        (errors.ContentPolicyViolation, 400, "invalid_request_error", "content_policy_violation"),
        (errors.AuthenticationFailed, 401, "invalid_request_error", "invalid_api_key"),
        (errors.PermissionDenied, 403, "permission_error", "insufficient_scope"),
        (errors.ModelNotFound, 404, "invalid_request_error", "model_not_found"),
        (errors.ModelRetired, 404, "invalid_request_error", "model_retired"),
        (errors.PayloadTooLarge, 413, "invalid_request_error", "payload_too_large"),
        (errors.UnsupportedMediaType, 415, "invalid_request_error", "unsupported_media_type"),
        (errors.RateLimited, 429, "rate_limit_error", "rate_limit_exceeded"),
        (errors.UpstreamError, 502, "upstream_error", "upstream_error"),
        (errors.UpstreamAuthFailed, 502, "upstream_error", "upstream_auth_failed"),
        (errors.ProviderNotConfigured, 503, "service_unavailable", "provider_not_configured"),
        (errors.UpstreamTimeout, 504, "timeout_error", "upstream_timeout"),
        (errors.GatewayError, 500, "server_error", None),
    ],
)
def test_status_type_and_code_of_each_error(
    cls: type[GatewayError], status: int, error_type: str, code: str | None
) -> None:
    error = cls("x")
    assert (error.status, error.error_type, error.code) == (status, error_type, code)


def test_explicit_code_overrides_the_default() -> None:
    error = errors.AuthenticationFailed("No key.", code="missing_api_key")
    assert json.loads(errors.render(error))["error"]["code"] == "missing_api_key"


def test_extra_headers_are_sent_with_the_retry_advice() -> None:
    error = RateLimited("Slow down.", headers={"retry-after": "7"})
    assert error.response_headers() == {"x-should-retry": "true", "retry-after": "7"}


def test_render_keeps_non_ascii_text_readable() -> None:
    rendered = errors.render(errors.InvalidValue("Invalid 'prompt': « vide »."))
    assert "« vide »".encode() in rendered


def test_internal_error_reveals_nothing() -> None:
    error = errors.internal_error()
    body = json.loads(errors.render(error))["error"]
    assert error.status == 500
    assert body["type"] == "server_error"
    assert body["param"] is None
    assert body["code"] is None
    assert "Traceback" not in body["message"]
    assert error.response_headers()["x-should-retry"] == "false"
