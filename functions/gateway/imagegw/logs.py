"""Structured JSON log lines, one per record, with the ``extra`` fields a record carries.

Only the gateway's own fields are logged: request ids, client key names (never keys), model ids,
counts, timings. Image bytes, secrets and link signatures are never passed to a logger; prompts
only when the operator sets ``IMAGEGW_LOG_PROMPTS``.

Every record carries ``correlation_id``: the ``x-request-id`` of an HTTP request, the job id of
a job, the event id of an event. The lines come from ``JsonFormatter``; under Lambda
(``lambda_logging``) on the ``imagegw`` logger, so that every module's
``logging.getLogger(__name__)`` goes through it, with the fields Powertools Logger wrote
(``timestamp``, ``service``, the invocation's ``cold_start``, ``function_name``,
``function_memory_size``, ``function_arn``, ``function_request_id``, ``xray_trace_id``).
Powertools itself is not imported for it: its package costs about 9 ms of every cold start
(it imports botocore and jmespath), which the gateway's own formatter does not need
(bench/RESULTS.md, round 6).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

PACKAGE_LOGGER = "imagegw"
SERVICE = "imagegw"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# AWS SDK wire logs. At DEBUG botocore writes request and response bodies (Secrets Manager
# values, image bytes), Authorization headers and presigned URL signatures. A root logger at
# DEBUG (Lambda's log-level setting, a developer's basicConfig) would send all of that to the
# logs, so these stay at WARNING whatever the root level is.
# httpx and httpcore log full upstream URLs at INFO/DEBUG; a provider key in a query string
# (Gemini's ?key=) must not follow them there.
_WIRE_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "httpx", "httpcore")

# A contextvar, not a global: uvicorn serves many requests at once on one loop.
correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "imagegw_correlation_id", default=None
)
# The Lambda invocation's fields, stamped on every record logged while it runs.
invocation: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "imagegw_invocation", default=None
)
_lambda_handler: logging.Handler | None = None


class CorrelationFilter(logging.Filter):
    """Stamps the current correlation id on every record that passes a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = correlation_id.get()
        if current is not None and not hasattr(record, "correlation_id"):
            record.correlation_id = current
        return True


class InvocationFilter(logging.Filter):
    """Stamps the time, the service and the current Lambda invocation's fields on a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.timestamp = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
            timespec="milliseconds"
        )
        record.service = SERVICE
        for name, value in (invocation.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    """Give the process a JSON handler unless something (Lambda, pytest, Powertools) has one."""
    logging.getLogger(PACKAGE_LOGGER).setLevel(level.upper())
    for name in _WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    if not root.handlers and _lambda_handler is None:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(CorrelationFilter())
        root.addHandler(handler)


class _StdoutHandler(logging.StreamHandler[Any]):
    """Writes to whatever ``sys.stdout`` is now (the Lambda runtime's, or a test's capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def lambda_logging(level: str) -> None:
    """JSON lines on stdout from the ``imagegw`` logger under Lambda, installed once per process.

    The Lambda runtime's own root handler (awslambdaric's ``LambdaLoggerHandler``) would write
    every line a second time, as plain text: it is told to leave the package's records alone,
    as Powertools Logger told it. Other handlers a process installs (a test's log guard) still
    see every record.
    """
    global _lambda_handler
    package = logging.getLogger(PACKAGE_LOGGER)
    package.setLevel(level.upper())
    if _lambda_handler is None:
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(CorrelationFilter())
        handler.addFilter(InvocationFilter())
        package.addHandler(handler)
        for other in logging.getLogger().handlers:
            if type(other).__name__.startswith("LambdaLoggerHandler"):
                other.addFilter(_NotThePackage())
        _lambda_handler = handler


class _NotThePackage(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != PACKAGE_LOGGER and not record.name.startswith(PACKAGE_LOGGER + ".")


_cold = True


def invocation_fields(context: Any) -> dict[str, Any]:
    """What every line of one invocation says about it (the fields Powertools Logger wrote)."""
    global _cold
    fields = {
        "cold_start": _cold,
        "function_name": getattr(context, "function_name", None),
        "function_memory_size": getattr(context, "memory_limit_in_mb", None),
        "function_arn": getattr(context, "invoked_function_arn", None),
        "function_request_id": getattr(context, "aws_request_id", None),
    }
    _cold = False
    trace = os.environ.get("_X_AMZN_TRACE_ID", "")
    root = next((part for part in trace.split(";") if part.startswith("Root=")), None)
    if root is not None:
        fields["xray_trace_id"] = root.removeprefix("Root=")
    return fields
