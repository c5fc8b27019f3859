"""Structured JSON log lines, one per record, with the ``extra`` fields a record carries.

Only the gateway's own fields are logged: request ids, client key names (never keys), model ids,
counts, timings. Prompts, image bytes, secrets and link signatures are never passed to a logger.
"""

from __future__ import annotations

import json
import logging
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# AWS SDK wire logs. At DEBUG botocore writes request and response bodies (Secrets Manager
# values, image bytes), Authorization headers and presigned URL signatures. A root logger at
# DEBUG (Lambda's log-level setting, a developer's basicConfig) would send all of that to the
# logs, so these stay at WARNING whatever the root level is.
_WIRE_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")


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
    """Give the process a JSON handler unless something (Lambda, pytest) already set one."""
    logging.getLogger("imagegw").setLevel(level.upper())
    for name in _WIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
