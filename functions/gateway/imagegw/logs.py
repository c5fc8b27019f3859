"""Structured JSON log lines, one per record, with the ``extra`` fields a record carries.

Only the gateway's own fields are logged: request ids, client key names (never keys), model ids,
counts, timings. Image bytes, secrets and link signatures are never passed to a logger; prompts
only when the operator sets ``IMAGEGW_LOG_PROMPTS``.

Every record carries ``correlation_id``: the ``x-request-id`` of an HTTP request, the job id of
a job, the event id of an event. Under uvicorn the lines come from ``JsonFormatter``; under
Lambda from Powertools Logger (same fields, plus the Lambda context: cold start, function
request id, X-Ray trace id), installed on the ``imagegw`` logger so that every module's
``logging.getLogger(__name__)`` goes through it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

PACKAGE_LOGGER = "imagegw"

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
_powertools_logger: Logger | None = None


class CorrelationFilter(logging.Filter):
    """Stamps the current correlation id on every record that passes a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = correlation_id.get()
        if current is not None and not hasattr(record, "correlation_id"):
            record.correlation_id = current
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
    if not root.handlers and _powertools_logger is None:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        handler.addFilter(CorrelationFilter())
        root.addHandler(handler)


class _StdoutHandler(logging.StreamHandler[Any]):
    """Writes to whatever ``sys.stdout`` is now (the Lambda runtime's, or a test's capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def lambda_logger(level: str) -> Logger:
    """Powertools Logger on the package logger, created once per process (imported lazily)."""
    global _powertools_logger
    if _powertools_logger is None:
        from aws_lambda_powertools import Logger

        handler = _StdoutHandler()
        handler.addFilter(CorrelationFilter())
        _powertools_logger = Logger(
            service=PACKAGE_LOGGER, level=level.upper(), logger_handler=handler
        )
    return _powertools_logger
