"""How big a response is once Lambda has wrapped it, checked before it is sent.

A buffered Lambda response above 6,291,556 bytes never reaches the caller: API Gateway answers a
bare 502 and the images are lost. The size that counts is the invocation result Mangum returns,
``{"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}``, serialized as JSON
by the runtime: the body becomes a JSON string, so its quotes and backslashes are escaped, and
non-ASCII text may become ``\\uXXXX`` escapes. The estimate errs on the large side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

LAMBDA_RESPONSE_LIMIT = 6_291_556

# The result's keys and status, headers set after the service (x-request-id, content-length,
# content-type, CORS), and both headers maps of Mangum's REST v1 answer.
ENVELOPE_ALLOWANCE = 2048


def lambda_response_size(content: bytes, headers: Mapping[str, str]) -> int:
    """An upper bound of the serialized Lambda result carrying ``content`` and ``headers``."""
    size = len(content) + content.count(b'"') + content.count(b"\\")
    if not content.isascii():
        # Worst case: every non-ASCII byte's character becomes a 6-byte \\uXXXX escape.
        size += 5 * sum(1 for byte in content if byte >= 0x80)
    # Headers appear twice in REST v1 results (headers and multiValueHeaders).
    size += 2 * len(json.dumps(dict(headers)))
    return size + ENVELOPE_ALLOWANCE
