"""The `make dev` gateway for client-side tests: local/* models, one key, under uvicorn.

``CountingLocal`` is the offline local provider with a call counter (and an optional hook run
on a given call), so a test can tell how many images were really generated.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.providers.base import ImageProvider, ImageRequest, ImageResult
from imagegw.providers.local import LocalProvider
from imagegw.settings import Settings

from support.fakes import FakeClock
from support.servers import GatewayServer

DEV_KEY = "sk-imagegw-dev"


class CountingLocal(ImageProvider):
    def __init__(self, *, on_call: dict[int, Callable[[], None]] | None = None) -> None:
        self._local = LocalProvider()
        self._lock = threading.Lock()
        self._on_call = dict(on_call or {})
        self.calls = 0
        self.prompts: list[str] = []

    async def generate(self, request: ImageRequest) -> ImageResult:
        with self._lock:
            self.calls += 1
            self.prompts.append(request.prompt)
            hook = self._on_call.pop(self.calls, None)
        if hook is not None:
            await asyncio.to_thread(hook)  # it may block: never on the server's event loop
        return await self._local.generate(request)


def local_gateway(tmp_path: Path, provider: ImageProvider | None = None) -> GatewayServer:
    settings = Settings(
        api_keys=DEV_KEY,
        local_storage_dir=tmp_path / "gateway-images",
        url_signing_secret="local-gateway-test-secret",
    )
    providers = {"local": provider} if provider is not None else None
    runtime = Runtime(settings, providers=providers, clock=FakeClock())
    return GatewayServer(create_app(runtime=runtime))
