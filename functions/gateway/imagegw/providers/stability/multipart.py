"""``multipart/form-data`` of text fields, as the Stability API requires for every request.

Stability's generate endpoints take only multipart bodies, even without a file. httpx encodes
multipart only when a file is given (the documented workaround sends a dummy file), so the few
text fields are encoded here: one part per field, UTF-8, with a random boundary that no value
contains.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

# (field name, file name, content type, bytes): an edit's input image.
FilePart = tuple[str, str, str, bytes]


def encode(fields: Mapping[str, str], files: Sequence[FilePart] = ()) -> tuple[bytes, str]:
    """The body and its Content-Type (with the boundary). Files go after the text fields."""
    encoded = {name: value.encode("utf-8") for name, value in fields.items()}
    while True:
        boundary = f"imagegw-{secrets.token_hex(16)}"
        marker = boundary.encode("ascii")
        values = [*encoded.values(), *(data for *_, data in files)]
        if not any(marker in value for value in values):
            break
    parts = []
    for name, value in encoded.items():
        # Field names are the gateway's own constants: plain ASCII, no quotes to escape.
        parts.append(
            b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
            % (marker, name.encode("ascii"), value)
        )
    for name, filename, content_type, data in files:
        # Names and types are the gateway's own constants (never the caller's file name).
        parts.append(
            b'--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
            b"Content-Type: %s\r\n\r\n%s\r\n"
            % (
                marker,
                name.encode("ascii"),
                filename.encode("ascii"),
                content_type.encode("ascii"),
                data,
            )
        )
    parts.append(b"--%s--\r\n" % marker)
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
