"""`imagegw batch` against the `make dev` gateway: async jobs, files on disk, interrupt, resume.

The interrupted run is a real process and a real SIGINT (Ctrl-C), sent by the gateway's provider
when the Nth image generation starts, so the interruption lands mid-batch at a known point with
no timing guess. The re-run must finish the batch without generating any prompt twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from imagegw.cli.app import cli
from imagegw.cli.batch import Batch, BatchFileError, job_status, read_prompts
from imagegw.cli.client import ImagesClient
from imagegw.errors import ContentPolicyViolation
from imagegw.providers.base import ImageRequest, ImageResult

from support.local_gateway import DEV_KEY, CountingLocal, local_gateway

GATEWAY_SOURCE = Path(__file__).resolve().parents[2] / "functions" / "gateway"
PROMPTS = 20


def prompts_file(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "prompts.jsonl"
    lines = [json.dumps({"prompt": f"lighthouse number {index}"}) for index in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def batch_process(base_url: str, prompts: Path, out: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(GATEWAY_SOURCE),
        "IMAGEGW_BASE_URL": base_url + "/v1",
        "IMAGEGW_API_KEY": DEV_KEY,
    }
    command = [sys.executable, "-m", "imagegw.cli", "batch", str(prompts), "-o", str(out)]
    options = ["-m", "local/sketch", "--size", "256x256", "--concurrency", "4"]
    return subprocess.Popen(
        [*command, *options, "--poll-interval", "0.05"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished_ids(out: Path) -> set[str]:
    return {path.stem for path in out.glob("*.json") if not path.name.endswith(".failed.json")}


def test_an_interrupted_batch_resumes_without_generating_anything_twice(tmp_path: Path) -> None:
    prompts = prompts_file(tmp_path, PROMPTS)
    out = tmp_path / "out"
    armed = threading.Event()
    first_exited = threading.Event()
    target: list[subprocess.Popen[str]] = []

    def interrupt() -> None:
        armed.wait(timeout=30)
        target[0].send_signal(signal.SIGINT)  # what Ctrl-C does
        # This image is made only once the interrupted run is gone: its job is in flight.
        first_exited.wait(timeout=60)

    provider = CountingLocal(on_call={9: interrupt})
    with local_gateway(tmp_path, provider) as gateway:
        first = batch_process(gateway.base_url, prompts, out)
        target.append(first)
        armed.set()
        _, stderr = first.communicate(timeout=120)
        first_exited.set()
        assert first.returncode == 130, stderr
        assert "Run the same command again to resume" in stderr
        done_first = finished_ids(out)
        assert len(done_first) < PROMPTS  # really interrupted mid-batch
        in_flight = provider.prompts[8]  # submitted, not finished, when the run was stopped
        assert f"{int(in_flight.rsplit(' ', 1)[1]) + 1:04d}" not in done_first

        second = batch_process(gateway.base_url, prompts, out)
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 0, stderr
        assert f"{PROMPTS} of {PROMPTS} requests done ({len(done_first)} from earlier runs)" in (
            stderr
        )

    # Every prompt generated exactly once: jobs submitted before the interrupt were found again
    # by their Idempotency-Key, finished ones were skipped on disk.
    assert provider.calls == PROMPTS
    assert sorted(provider.prompts) == sorted(f"lighthouse number {i}" for i in range(PROMPTS))
    assert finished_ids(out) == {f"{line:04d}" for line in range(1, PROMPTS + 1)}
    for line in range(1, PROMPTS + 1):
        meta = json.loads((out / f"{line:04d}.json").read_text())
        assert meta["request"]["prompt"] == f"lighthouse number {line - 1}"
        assert meta["job_id"].startswith("job_")
        (image,) = meta["images"]
        assert (out / image["file"]).read_bytes().startswith(b"\x89PNG")


def test_failures_are_recorded_reported_and_retried_on_request(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"id": "good", "prompt": "a kite"}\n'
        '{"id": "bad", "prompt": "a kite", "size": "7x7"}\n'
        '"a bare prompt"\n'
    )
    out = tmp_path / "out"
    with local_gateway(tmp_path) as gateway:
        env = {"IMAGEGW_BASE_URL": gateway.base_url + "/v1", "IMAGEGW_API_KEY": DEV_KEY}
        argv = [
            "batch",
            str(prompts),
            "-o",
            str(out),
            "-m",
            "local/sketch",
            "--poll-interval",
            "0.05",
        ]
        result = CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert "bad failed: 400" in result.stderr
        assert "(param: size)" in result.stderr
        assert "2 of 3 requests done" in result.stderr
        assert finished_ids(out) == {"good", "0003"}
        failure = json.loads((out / "bad.failed.json").read_text())
        assert "param: size" in failure["error"]

        # A re-run reports the failure without sending it again; --retry-failed sends it.
        again = CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)
        assert again.exit_code == 1
        assert "2 of 3 requests done (2 from earlier runs)" in again.stderr
        prompts.write_text('{"id": "bad", "prompt": "a kite", "size": "512x512"}\n')
        fixed = CliRunner().invoke(cli, [*argv, "--retry-failed"], env=env)
        assert fixed.exit_code == 0, fixed.output
        assert not (out / "bad.failed.json").exists()
        assert "bad" in finished_ids(out)


class RefusesDoomedPrompts(CountingLocal):
    async def generate(self, request: ImageRequest) -> ImageResult:
        if "doomed" in request.prompt:
            raise ContentPolicyViolation("The upstream's safety system refused the prompt.")
        return await super().generate(request)


def test_a_job_that_fails_on_the_server_is_reported_with_its_error(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "fine", "prompt": "a kite"}\n{"id": "no", "prompt": "doomed"}\n')
    out = tmp_path / "out"
    provider = RefusesDoomedPrompts()
    with local_gateway(tmp_path, provider) as gateway:
        env = {"IMAGEGW_BASE_URL": gateway.base_url + "/v1", "IMAGEGW_API_KEY": DEV_KEY}
        argv = ["batch", str(prompts), "-o", str(out), "-m", "local/sketch"]
        result = CliRunner().invoke(cli, [*argv, "--poll-interval", "0.05"], env=env)
    assert result.exit_code == 1, result.output
    # The job's own error object: accepted (202), then failed in the worker.
    assert (
        "no failed: The upstream's safety system refused the prompt. [content_policy_violation]"
        in (result.stderr)
    )
    assert "1 of 2 requests done" in result.stderr
    assert "cost $0.0000" in result.stderr  # local/* models are priced at zero
    assert finished_ids(out) == {"fine"}
    assert json.loads((out / "no.failed.json").read_text())["attempt"] == 0


def test_a_server_without_a_job_queue_answers_at_once_and_cost_is_summed(tmp_path: Path) -> None:
    """RFC 7240: a server may ignore `Prefer: respond-async` and answer 200 (the gateway on
    Lambda without a queue, or another OpenAI-compatible server)."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        return httpx.Response(
            200,
            json={
                "created": 1,
                "model": body["model"],
                "data": [{"b64_json": "iVBORw0KGgo="}] * body.get("n", 1),
                "cost": {"amount": 0.25, "currency": "USD", "estimated": False},
            },
            headers={"x-request-id": "req_sync"},
        )

    items = read_prompts('{"prompt": "a"}\n{"prompt": "b", "n": 2}\n', {"model": "m/x"})

    class Quiet:
        def begin(self, items: object) -> None: ...
        def status(self, item: object, status: str) -> None: ...
        def image_saved(self, item: object) -> None: ...
        def finished(self, item: object, outcome: object) -> None: ...

    async def run() -> None:
        client = ImagesClient("http://api.test/v1", "sk-x", transport=httpx.MockTransport(answer))
        async with client:
            totals = await Batch(client, tmp_path, Quiet()).run(items)
        assert (totals.done, totals.images, totals.cost, totals.priced) == (2, 3, 0.5, 2)

    import asyncio

    asyncio.run(run())
    assert [request.headers["prefer"] for request in seen] == ["respond-async"] * 2
    keys = {request.headers["idempotency-key"] for request in seen}
    assert len(keys) == 2
    assert all(key.startswith("imagegw-batch-") for key in keys)
    assert sorted(path.name for path in tmp_path.glob("*.png")) == [
        "0001-1.png",
        "0002-1.png",
        "0002-2.png",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"prompt": "a"}\nnot json\n', "line 2: not JSON"),
        ('{"prompt": ""}\n', "line 1: 'prompt' must be a non-empty string"),
        ('{"prompt": "a", "id": "../x"}\n', "line 1: 'id' must be"),
        ('{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n', "line 2: the id 'x'"),
        ("[1, 2]\n", "line 1: expected a JSON object"),
    ],
)
def test_a_bad_prompts_file_is_refused_before_anything_is_sent(text: str, message: str) -> None:
    with pytest.raises(BatchFileError, match="^" + message.replace("(", r"\(")):
        read_prompts(text, {})


def test_a_running_job_is_described_by_its_progress() -> None:
    assert job_status({"status": "queued"}) == "queued"
    running = {"stage": "generating", "images": 4, "images_done": 1, "percent": 42.4}
    assert job_status({"status": "running", "progress": running}) == "generating 1/4 42%"
    single = {"stage": "storing", "images": 1, "images_done": 1}
    assert job_status({"status": "running", "progress": single}) == "storing"
