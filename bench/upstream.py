"""A fake OpenAI Images upstream built to be fast: prebuilt answers on bare asyncio streams.

The test suite's ``tests/support/fake_openai.py`` draws every image with Pillow and serves it
from ``ThreadingHTTPServer``: faithful, but it would dominate the time being measured. This one
answers ``POST /v1/images/generations`` with a body built once per ``n`` (the same PNG ``n``
times, as base64 in the real response shape), over HTTP/1.1 keep-alive. It runs in its own
process so that it competes with neither the client nor the gateway for the GIL:

    python -m bench.upstream --image noise.png [--delay-ms 200]

prints ``PORT <port>`` once it listens on 127.0.0.1 and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from pathlib import Path

PATH = b"/v1/images/generations"
MAX_N = 10


class Answers:
    """The response bodies, one per ``n``, built on first use."""

    def __init__(self, image: bytes, size: str) -> None:
        self._b64 = base64.b64encode(image).decode("ascii")
        self._size = size
        self._bodies: dict[int, bytes] = {}

    def body(self, n: int) -> bytes:
        if n not in self._bodies:
            document = {
                "created": int(time.time()),
                "data": [{"b64_json": self._b64} for _ in range(n)],
                "background": "opaque",
                "output_format": "png",
                "quality": "medium",
                "size": self._size,
                "usage": {
                    "input_tokens": 12,
                    "output_tokens": 1056 * n,
                    "total_tokens": 12 + 1056 * n,
                    "input_tokens_details": {"image_tokens": 0, "text_tokens": 12},
                },
            }
            self._bodies[n] = json.dumps(document).encode("ascii")
        return self._bodies[n]


def response(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def error(status: int, message: str) -> bytes:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None}}
    return response(status, json.dumps(body).encode())


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: Answers, delay: float
) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            writer.write(await answer(request_line, headers, body, answers, delay))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def answer(
    request_line: str, headers: dict[str, str], body: bytes, answers: Answers, delay: float
) -> bytes:
    method, target, _ = request_line.split(" ", 2)
    if method != "POST" or target.encode() != PATH:
        return error(404, f"Unknown URL: {method} {target}")
    if not headers.get("authorization", "").startswith("Bearer "):
        return error(401, "You didn't provide an API key.")
    try:
        n = int(json.loads(body).get("n", 1))
    except (ValueError, TypeError, AttributeError):
        return error(400, "The body is not a JSON object with an integer n.")
    if not 1 <= n <= MAX_N:
        return error(400, f"n must be between 1 and {MAX_N}.")
    if delay:
        await asyncio.sleep(delay)
    return response(200, answers.body(n))


async def main(image: bytes, size: str, delay: float) -> None:
    answers = Answers(image, size)
    for n in (1, 4):  # the common answers are ready before the first request
        answers.body(n)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, answers, delay)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--size", default="1024x896")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    arguments = parser.parse_args()
    try:
        asyncio.run(main(arguments.image.read_bytes(), arguments.size, arguments.delay_ms / 1000))
    except KeyboardInterrupt:
        sys.exit(0)
