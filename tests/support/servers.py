"""The gateway under a real uvicorn server on 127.0.0.1, in a background thread.

The socket is bound (port 0: the kernel picks a free port) before the server starts, so there is
no race for a port and the URL is known at once. On exit the server is asked to stop, the
runtime's upstream client is closed in the server's own event loop, and the thread is joined.

    with GatewayServer(create_app(runtime=runtime), runtime=runtime) as gateway:
        openai.OpenAI(base_url=gateway.base_url + "/v1", ...)
"""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn
from fastapi import FastAPI

from imagegw.entrypoints.runtime import Runtime

_START_TIMEOUT_SECONDS = 10.0


class _AnnouncingServer(uvicorn.Server):
    """Sets ``ready`` once startup has ended, listening or not (then ``started`` is False)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class GatewayServer:
    def __init__(self, app: FastAPI, *, runtime: Runtime | None = None) -> None:
        self.app = app
        self.runtime = runtime if runtime is not None else app.state.runtime
        self._socket: socket.socket | None = None
        self._server: _AnnouncingServer | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        assert self._socket is not None, "the gateway is not running"
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,  # leave logging to pytest
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = self._server = _AnnouncingServer(config)
        self._thread = threading.Thread(target=self._run, name="gateway-uvicorn", daemon=True)
        self._thread.start()
        if not server.ready.wait(_START_TIMEOUT_SECONDS):
            self.stop()
            raise RuntimeError("the gateway did not start in time")
        if not server.started or self._failure is not None:
            self.stop()
            raise RuntimeError("the gateway did not start") from self._failure
        return self

    def _run(self) -> None:
        assert self._server is not None
        assert self._socket is not None
        server, sock, runtime = self._server, self._socket, self.runtime

        async def serve() -> None:
            try:
                await server.serve(sockets=[sock])
            finally:
                # The upstream client belongs to this loop: close it here, not after.
                await runtime.aclose()

        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported by start() or stop()
            self._failure = exc
        finally:
            server.ready.set()  # a failure before startup must not leave start() waiting

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            assert not self._thread.is_alive(), "the gateway did not stop"
        if self._socket is not None:
            self._socket.close()
        self._thread = None
        self._server = None

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self._failure is not None:
            raise RuntimeError("the gateway failed while serving") from self._failure
