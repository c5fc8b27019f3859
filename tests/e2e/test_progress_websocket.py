"""The job-progress WebSocket under uvicorn, with a real WebSocket client (``websockets``)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.providers.base import ImageRequest, ImageResult
from imagegw.providers.progress import report_progress
from imagegw.settings import Settings

from support.fakes import FakeClock, FakeProvider
from support.servers import GatewayServer

KEY = "sk-owner-test"
OTHER = "sk-other-test"


class Gated(FakeProvider):
    """Reports the upstream's progress, then waits for the test before it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    async def generate(self, request: ImageRequest) -> ImageResult:
        report_progress(stage="Pending", percent=40.0)
        await asyncio.to_thread(self.gate.wait, 10)
        return await super().generate(request)


@pytest.fixture
def provider() -> Gated:
    return Gated()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway(tmp_path: Path, provider: Gated, clock: FakeClock) -> Iterator[GatewayServer]:
    settings = Settings(
        api_keys=f"{KEY},{OTHER}", local_storage_dir=tmp_path / "images", url_signing_secret="s"
    )
    runtime = Runtime(settings, providers={"openai": provider}, clock=clock)
    with GatewayServer(create_app(runtime=runtime)) as server:
        yield server
    provider.gate.set()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def token(gateway: GatewayServer, key: str = KEY) -> dict[str, Any]:
    response = httpx.post(gateway.base_url + "/v1/realtime/tokens", headers=auth(key), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def submit(gateway: GatewayServer, key: str = KEY, **fields: Any) -> str:
    body = {"model": "gpt-image-1.5", "prompt": "a bicycle", **fields}
    response = httpx.post(
        gateway.base_url + "/v1/images/generations",
        json=body,
        headers={**auth(key), "Prefer": "respond-async"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def receive(socket: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(socket.recv(timeout=20))
    return message


def test_a_token_connects_and_progress_is_pushed_until_the_job_ends(
    gateway: GatewayServer, provider: Gated
) -> None:
    issued = token(gateway)
    assert issued["url"] == f"ws://127.0.0.1:{gateway.port}/v1/images/progress"
    assert issued["token"].startswith("rt_")
    job_id = submit(gateway, n=2)
    with connect(f"{issued['url']}?token={issued['token']}") as socket:
        socket.send(json.dumps({"type": "subscribe", "job_id": job_id}))
        assert receive(socket) == {"type": "subscribed", "job_id": job_id}
        kinds = []
        while True:
            message = receive(socket)
            kinds.append(message["type"])
            job = message["job"]
            assert job["id"] == job_id
            if job.get("progress", {}).get("percent") == 40.0 and not provider.gate.is_set():
                assert message["type"] == "job.progress"
                assert job["status"] == "running"
                provider.gate.set()
            if message["type"] != "job.progress":
                break
    assert kinds[-1] == "job.succeeded"
    assert provider.gate.is_set()  # progress arrived while the upstream was still working
    assert job["progress"]["stage"] == "succeeded"
    assert len(job["result"]["data"]) == 2


def test_a_token_is_single_use(gateway: GatewayServer) -> None:
    issued = token(gateway)
    with connect(f"{issued['url']}?token={issued['token']}"):
        pass
    with pytest.raises(InvalidStatus) as caught:
        connect(f"{issued['url']}?token={issued['token']}")
    assert caught.value.response.status_code == 401


def test_a_token_expires(gateway: GatewayServer, clock: FakeClock) -> None:
    issued = token(gateway)
    clock.now += 61
    with pytest.raises(InvalidStatus) as caught:
        connect(f"{issued['url']}?token={issued['token']}")
    assert caught.value.response.status_code == 401


def test_the_key_can_travel_in_the_subprotocol_header(gateway: GatewayServer) -> None:
    url = f"ws://127.0.0.1:{gateway.port}/v1/images/progress"
    with connect(url, subprotocols=["imagegw.v1", f"imagegw.key.{KEY}"]) as socket:  # type: ignore[list-item]
        # The server picks the protocol, never echoes the credential.
        assert socket.subprotocol == "imagegw.v1"
        socket.send(json.dumps({"type": "subscribe", "job_id": "job_unknown"}))
        assert receive(socket)["error"]["code"] == "job_not_found"


@pytest.mark.parametrize(
    "how",
    [
        {"subprotocols": ["imagegw.v1", "imagegw.key.sk-wrong"]},
        {"subprotocols": ["imagegw.v1", "imagegw.token.rt_forged"]},
        {},
    ],
)
def test_without_valid_credentials_the_connection_is_refused(
    gateway: GatewayServer, how: dict[str, Any]
) -> None:
    url = f"ws://127.0.0.1:{gateway.port}/v1/images/progress"
    with pytest.raises(InvalidStatus) as caught:
        connect(url, **how)
    assert caught.value.response.status_code == 401
    assert json.loads(caught.value.response.body or b"{}")["error"]["code"] == "invalid_api_key"


def test_a_key_cannot_follow_another_keys_job(gateway: GatewayServer, provider: Gated) -> None:
    provider.gate.set()
    theirs = submit(gateway, key=OTHER)
    issued = token(gateway, KEY)
    with connect(f"{issued['url']}?token={issued['token']}") as socket:
        socket.send(json.dumps({"type": "subscribe", "job_id": theirs}))
        refused = receive(socket)
        assert refused["type"] == "error"
        assert refused["job_id"] == theirs
        assert refused["error"]["code"] == "job_not_found"
        socket.send("not json")
        assert receive(socket)["error"]["code"] == "invalid_json"


def test_token_issuing_needs_a_key(gateway: GatewayServer) -> None:
    response = httpx.post(gateway.base_url + "/v1/realtime/tokens", timeout=10)
    assert response.status_code == 401
