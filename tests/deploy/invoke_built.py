"""Call a built Lambda handler with one event, as the Lambda runtime would; write the result.

Run by test_built_package.py under python3.12 with PYTHONPATH set to the built function and layer
(nothing from the repository's source tree). The result goes to a file, not stdout, because the
function's own logs go to stdout as they do in Lambda.

Usage: invoke_built.py HANDLER EVENT_FILE RESULT_FILE
"""

from __future__ import annotations

import importlib
import importlib._bootstrap_external as bootstrap_external
import json
import sys
from typing import Any

# Every module compiled from source instead of loaded from a .pyc (a missing, stale or rejected
# one): installed before the handler's first import, reported with the result.
compiled_from_source: list[str] = []
_source_to_code = bootstrap_external.SourceLoader.source_to_code


def _recording_source_to_code(self: Any, data: Any, path: Any, *, _optimize: int = -1) -> Any:
    compiled_from_source.append(str(path))
    return _source_to_code(self, data, path, _optimize=_optimize)


bootstrap_external.SourceLoader.source_to_code = _recording_source_to_code  # type: ignore[method-assign]


class LambdaContext:
    """The attributes of the Python runtime's context object."""

    function_name = "imagegw-package-check-GatewayFunction"
    function_version = "$LATEST"
    invoked_function_arn = (
        "arn:aws:lambda:us-east-1:123456789012:function:imagegw-package-check-GatewayFunction"
    )
    memory_limit_in_mb = 1024
    aws_request_id = "5f0c1f0e-6d1b-4c4e-9a53-2f6f8f3e9d10"
    log_group_name = "/aws/lambda/imagegw-package-check"
    log_stream_name = "2026/11/22/[$LATEST]00000000000000000000000000000000"
    identity = None
    client_context = None

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def main(handler_name: str, event_file: str, result_file: str) -> None:
    module_name, attribute = handler_name.rsplit(".", 1)
    module = importlib.import_module(module_name)
    handler = getattr(module, attribute)
    with open(event_file, encoding="utf-8") as file:
        event = json.load(file)
    result: Any = handler(event, LambdaContext())
    # Where the code and the native dependencies were loaded from, to check the paths.
    pydantic_core = importlib.import_module("pydantic_core")
    report = {
        "result": result,
        "python": list(sys.version_info[:2]),
        "handler_module": module.__file__,
        "pydantic_core": pydantic_core.__file__,
        "compiled_from_source": compiled_from_source,
    }
    with open(result_file, "w", encoding="utf-8") as file:
        json.dump(report, file)


if __name__ == "__main__":
    main(*sys.argv[1:4])
