"""A JSON response written as the pieces it was serialized in, images not copied into it first.

``jsonbody.dump_parts`` leaves a generation's answer as text and images in turn, the images
being views of the upstream's answer. Joining them into one ``bytes`` copied every image once
more and held the upstream answer and the response in memory together, twice the images at the
peak. Each piece is one ASGI body message instead; ``Content-Length`` is their total, so
servers send them as they are (uvicorn writes each to the socket; Mangum collects them into the
one body a buffered Lambda answer has).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class JSONPartsResponse(Response):
    media_type = "application/json"

    def __init__(
        self,
        parts: Sequence[bytes | memoryview],
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.parts = parts
        super().__init__(status_code=status_code, headers=headers)
        # Starlette counted an empty body: the length is the pieces'.
        self.headers["content-length"] = str(sum(len(part) for part in parts))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        last = len(self.parts) - 1
        for index, part in enumerate(self.parts):
            await send({"type": "http.response.body", "body": part, "more_body": index < last})
        if last < 0:
            await send({"type": "http.response.body", "body": b""})
