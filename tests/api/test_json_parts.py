"""``api/json_parts.py``: a JSON answer written as its pieces, with the length of all of them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from imagegw.api.json_parts import JSONPartsResponse

IMAGE = bytearray(b"QUJD" * 50_000)


def sent(response: JSONPartsResponse) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(response({"type": "http", "method": "POST"}, receive, send))
    return messages


def test_each_piece_is_one_body_message_and_the_length_is_their_total() -> None:
    image = memoryview(IMAGE)
    parts = [b'{"data": [{"b64_json": "', image, b'"}]}']
    messages = sent(JSONPartsResponse(parts, headers={"x-imagegw-model": "m"}))
    start, *bodies = messages
    headers = dict(start["headers"])
    assert start["status"] == 200
    assert headers[b"content-length"] == str(len(parts[0]) + len(IMAGE) + len(parts[2])).encode()
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"x-imagegw-model"] == b"m"
    # The image goes out as the view it is, not copied into a joined body.
    assert [message["body"] for message in bodies] == parts
    assert bodies[1]["body"] is image
    assert [message["more_body"] for message in bodies] == [True, True, False]


def test_no_pieces_is_an_empty_body() -> None:
    start, body = sent(JSONPartsResponse([], status_code=200))
    assert dict(start["headers"])[b"content-length"] == b"0"
    assert body == {"type": "http.response.body", "body": b""}


def test_a_client_reads_the_pieces_as_one_json_document() -> None:
    async def answer(request: Request) -> JSONPartsResponse:
        return JSONPartsResponse(
            [b'{"data": [{"b64_json": "', memoryview(IMAGE), b'"}], "n": 1}'],
            headers={"x-request-id": "r"},
        )

    app = Starlette(routes=[Route("/v1/images/generations", answer, methods=["POST"])])

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.post("/v1/images/generations")

    response = asyncio.run(call())
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert json.loads(response.content) == {"data": [{"b64_json": IMAGE.decode()}], "n": 1}
