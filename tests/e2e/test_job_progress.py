"""A job's progress under uvicorn: polled with GET, followed with SSE (``/events``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.conftest import CLIENT_KEY
from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.providers.base import ImageRequest, ImageResult
from imagegw.providers.progress import report_progress
from imagegw.settings import Settings

from support.fakes import FakeClock, FakeProvider
from support.jobs import sse_events
from support.servers import GatewayServer

AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}
ASYNC = {**AUTH, "Prefer": "respond-async"}


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
def gateway(tmp_path: Path, provider: Gated) -> Iterator[GatewayServer]:
    settings = Settings(
        api_keys=CLIENT_KEY, local_storage_dir=tmp_path / "images", url_signing_secret="s"
    )
    runtime = Runtime(settings, providers={"openai": provider}, clock=FakeClock())
    with GatewayServer(create_app(runtime=runtime)) as server:
        yield server
    provider.gate.set()


def submit(gateway: GatewayServer, body: dict[str, Any]) -> str:
    response = httpx.post(
        gateway.base_url + "/v1/images/generations", json=body, headers=ASYNC, timeout=10
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def test_events_follow_the_job_as_it_runs(gateway: GatewayServer, provider: Gated) -> None:
    job_id = submit(gateway, {"model": "gpt-image-1.5", "prompt": "a bicycle", "n": 2})
    seen: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream(
        "GET", f"{gateway.base_url}/v1/images/jobs/{job_id}/events", headers=AUTH, timeout=20
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for name, data in sse_events(response):
            seen.append((name, data))
            progress = data["progress"]
            if progress.get("percent") == 40.0 and not provider.gate.is_set():
                # The job is still running: polling shows the same progress.
                polled = httpx.get(
                    f"{gateway.base_url}/v1/images/jobs/{job_id}", headers=AUTH, timeout=10
                ).json()
                assert polled["status"] == "running"
                assert polled["progress"]["stage"] == "generating"
                assert polled["progress"]["upstream_stage"] == "Pending"
                provider.gate.set()
    names = [name for name, _ in seen]
    assert names[-1] == "job.succeeded"
    assert set(names[:-1]) == {"job.progress"}
    assert provider.gate.is_set()  # the 40 % event came while the upstream was still working
    final = seen[-1][1]
    assert final["progress"]["stage"] == "succeeded"
    assert final["progress"]["images_done"] == 2
    assert len(final["result"]["data"]) == 2


def test_a_streamed_job_shows_its_partial_images_as_links(gateway: GatewayServer) -> None:
    job_id = submit(
        gateway,
        {"model": "local/sketch", "prompt": "a fox", "stream": True, "partial_images": 2},
    )
    with httpx.stream(
        "GET", f"{gateway.base_url}/v1/images/jobs/{job_id}/events", headers=AUTH, timeout=20
    ) as response:
        final = list(sse_events(response))[-1]
    assert final[0] == "job.succeeded"
    partials = final[1]["progress"]["partial_images"]
    assert [partial["index"] for partial in partials] == [0, 1]
    for partial in partials:
        image = httpx.get(partial["url"], timeout=10)
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"


def test_events_of_someone_elses_job_are_a_404(gateway: GatewayServer) -> None:
    response = httpx.get(
        f"{gateway.base_url}/v1/images/jobs/job_unknown/events", headers=AUTH, timeout=10
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"
