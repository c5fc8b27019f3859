"""The Python examples of docs/streaming.md run as written against a gateway under uvicorn
(only the address changes: the examples say `make dev`'s http://127.0.0.1:8000)."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.servers import GatewayServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "streaming.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    settings = Settings(
        api_keys="sk-imagegw-dev", local_storage_dir=tmp_path / "images", url_signing_secret="s"
    )
    with GatewayServer(create_app(runtime=Runtime(settings))) as server:
        yield server


def run(
    example: str, gateway: GatewayServer, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.chdir(directory)
    code = example.replace("http://127.0.0.1:8000", gateway.base_url)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})  # noqa: S102
    return printed.getvalue()


def test_the_docs_have_the_examples_this_file_runs() -> None:
    assert len(EXAMPLES) == 2


def test_the_sdk_streaming_example_writes_partial_and_final_images(
    gateway: GatewayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(EXAMPLES[0], gateway, tmp_path, monkeypatch)
    written = sorted(path.name for path in tmp_path.glob("*.png"))
    assert written == ["final.png", "partial-0.png", "partial-1.png"]
    for name in written:
        assert Image.open(tmp_path / name).format == "PNG"


def test_the_websocket_example_follows_a_job_to_its_end(
    gateway: GatewayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gateway's own log lines (JSON, on stdout) are not the example's.
    output = run(EXAMPLES[1], gateway, tmp_path, monkeypatch).splitlines()
    printed = [line for line in output if not line.startswith("{")]
    assert printed[0].startswith("subscribed")
    assert printed[-1].startswith("job.succeeded")
