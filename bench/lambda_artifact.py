"""The Lambda function as deployed: cold starts of the built artifact, and CPU per invocation.

    python -m bench.lambda_artifact [--samples 10] [--warm 30]   # `make bench-lambda`

Needs `make package-check`'s builds: the arm64 function code (.aws-sam/build/GatewayFunction,
pure Python, what deploys), the same layer built for x86_64 (this machine cannot load aarch64
native code) and the runtime's boto3 (.aws-sam/lambda-runtime), run under python3.12 as Lambda
runs them. Everything is copied with its dates reset to 1980-01-01, as SAM's ZIP leaves them in
/var/task and /opt, and made read-only, as those are: no bytecode can be written, and a
timestamp-checked .pyc would be refused.

1. Cold start: a fresh interpreter imports the handler and answers one event, per sample. Four
   sides alternate: the gateway and a minimal FastAPI + Mangum handler (bench/minimal_handler.py,
   compiled the same way), each with the artifact's .pyc files ("as deployed") and without any
   ("before": what `sam build` shipped before the Makefile builds).
2. CPU per invocation of the Lambda path in production: a REST API event asking for one image in
   b64_json, the upstream (bench/upstream.py, its own process) answering 2.02 MB of base64; the
   minimal handler answers the same bytes in the same JSON shape without an upstream call. CPU is
   the process's (user + system, every thread): the cold figure is the interpreter's start, the
   import and the first invocation; warm ones are each later invocation. Lambda bills duration,
   and the gateway's duration beyond the upstream's is this CPU at one vCPU (1,769 MB) or more.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import procs
from bench.images import noise_png
from bench.stats import percentile

REPO = procs.REPO
BUILD_FUNCTION = REPO / ".aws-sam" / "build" / "GatewayFunction"
BUILD_LAYER = REPO / ".aws-sam" / "build-x86_64" / "DependenciesLayer" / "python"
LAMBDA_RUNTIME = REPO / ".aws-sam" / "lambda-runtime"
MINIMAL = REPO / "bench" / "minimal_handler.py"
ZIP_EPOCH = 315_532_800  # 1980-01-01T00:00:00Z
PYTHON312_CANDIDATES = ("python3.12", str(Path.home() / ".pyenv/versions/3.12.1/bin/python3.12"))

# Imports, answers and measures inside the child: import + first answer (cold), then warm ones.
PROBE = r"""
import json, sys, time
cpu0 = time.process_time()
wall0 = time.perf_counter()
import importlib
module = importlib.import_module(sys.argv[1])
imported_cpu = time.process_time()
imported_wall = time.perf_counter()
with open(sys.argv[2], encoding="utf-8") as file:
    event = json.load(file)
warm = int(sys.argv[4])

class Context:
    function_name = "bench"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self):
        return 29000

def answer():
    response = module.handler(event, Context())
    status = response.get("statusCode")
    if status != 200:
        raise SystemExit(f"answered {status}: {str(response.get('body'))[:300]}")
    return response

answer()
first_cpu = time.process_time()
first_wall = time.perf_counter()
warm_cpu = []
for _ in range(warm):
    started = time.process_time()
    answer()
    warm_cpu.append(time.process_time() - started)
with open(sys.argv[3], "w", encoding="utf-8") as file:
    json.dump({
        "import_s": imported_wall - wall0,
        "first_event_s": first_wall - imported_wall,
        "cold_cpu_s": first_cpu,  # since the interpreter started, import and first answer
        "import_cpu_s": imported_cpu - cpu0,
        "warm_cpu_s": warm_cpu,
    }, file)
"""


def python312() -> str:
    """The first interpreter that really is 3.12 (pyenv's shim may point at none)."""
    candidates = [os.environ.get("PYTHON312", ""), *PYTHON312_CANDIDATES]
    for candidate in candidates:
        found = shutil.which(candidate) if candidate else None
        if found is None:
            continue
        probe = subprocess.run(
            [found, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return found
    raise SystemExit("python3.12 is needed (the Lambda runtime's version): set PYTHON312")


def require_builds() -> None:
    for path in (BUILD_FUNCTION, BUILD_LAYER, LAMBDA_RUNTIME):
        if not path.is_dir():
            raise SystemExit(f"{path} is missing: run `make package-check` first")


def as_deployed(source: Path, target: Path, *, bytecode: bool) -> Path:
    ignore = None if bytecode else shutil.ignore_patterns("__pycache__")
    shutil.copytree(source, target, ignore=ignore)
    for path in [target, *target.rglob("*")]:
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH), follow_symlinks=False)
    for path in [*target.rglob("*"), target]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return target


def minimal_function(directory: Path, python: str) -> Path:
    """bench/minimal_handler.py as a function package, compiled like the gateway's."""
    source = directory / "minimal-source" / "bench"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("", encoding="utf-8")
    shutil.copy(MINIMAL, source / "minimal_handler.py")
    subprocess.run(
        [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(source)],
        check=True,
    )
    return source.parent


@dataclass(frozen=True)
class Side:
    name: str
    module: str
    function: Path
    layer: Path


def run_probe(
    python: str,
    side: Side,
    event: Path,
    warm: int,
    scratch: Path,
    environment: dict[str, str],
) -> tuple[dict[str, object], float]:
    result = scratch / "probe.json"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "PYTHONPATH": os.pathsep.join(map(str, (side.function, side.layer, LAMBDA_RUNTIME))),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "imagegw-bench-GatewayFunction",
        "POWERTOOLS_SERVICE_NAME": "imagegw",
        "POWERTOOLS_TRACE_DISABLED": "true",
        # The allocator thresholds template.yaml gives both functions.
        "GLIBC_TUNABLES": procs.GLIBC_TUNABLES,
        **environment,
    }
    started = time.perf_counter()
    subprocess.run(
        [python, "-S", "-c", PROBE, side.module, str(event), str(result), str(warm)],
        env=env,
        cwd=scratch,
        stdout=subprocess.DEVNULL,  # the function's logs and EMF lines
        stderr=subprocess.PIPE,
        check=True,
        timeout=300,
    )
    return json.loads(result.read_text(encoding="utf-8")), time.perf_counter() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def cold_starts(python: str, sides: list[Side], samples: int, scratch: Path) -> list[str]:
    env = {"IMAGEGW_API_KEYS": "sk-imagegw-dev", "IMAGEGW_LOCAL_STORAGE_DIR": str(scratch)}
    lines = [
        "| event | side | import p50 | first event p50 | import + first p50 | process p50 "
        "| CPU to first answer p50 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for event_name in ("rest-v1-models", "rest-v1-generate"):
        event = REPO / "events" / f"{event_name}.json"
        taken: dict[str, list[tuple[float, float, float, float]]] = {s.name: [] for s in sides}
        for index in range(samples):
            order = sides if index % 2 == 0 else list(reversed(sides))
            for side in order:
                report, process_s = run_probe(python, side, event, 0, scratch, env)
                import_s = float(report["import_s"])  # type: ignore[arg-type]
                first_s = float(report["first_event_s"])  # type: ignore[arg-type]
                cpu_s = float(report["cold_cpu_s"])  # type: ignore[arg-type]
                taken[side.name].append((import_s, first_s, process_s, cpu_s))
        for side in sides:
            values = taken[side.name]
            lines.append(
                f"| {event_name} | {side.name} | {ms(percentile([v[0] for v in values], 0.5))} ms"
                f" | {ms(percentile([v[1] for v in values], 0.5))} ms"
                f" | {ms(percentile([v[0] + v[1] for v in values], 0.5))} ms"
                f" | {ms(percentile([v[2] for v in values], 0.5))} ms"
                f" | {ms(percentile([v[3] for v in values], 0.5))} ms |"
            )
    return lines


def generate_event(body: dict[str, object]) -> dict[str, object]:
    event: dict[str, object] = json.loads(
        (REPO / "events" / "rest-v1-generate.json").read_text(encoding="utf-8")
    )
    event["body"] = json.dumps(body)
    return event


def cpu_per_invocation(
    python: str, gateway: Side, minimal: Side, samples: int, warm: int, scratch: Path
) -> list[str]:
    image_file = scratch / "noise.png"
    image = noise_png()
    image_file.write_bytes(image)
    b64_bytes = len(base64.b64encode(image))
    lines = [
        f"Upstream answer: one {len(image) / 1e6:.2f} MB PNG as {b64_bytes / 1e6:.2f} MB of "
        f"base64; the handler's answer carries the same base64 (n = 1, b64_json).",
        "",
        "| side | cold: CPU to first answer, p50 | of which import | warm: CPU per invocation, "
        "p50 / p90 |",
        "|---|---:|---:|---:|",
    ]
    b64_file = scratch / "answer.b64"
    b64_file.write_bytes(base64.b64encode(image))
    with procs.upstream(image_file) as upstream:
        gateway_event = scratch / "gateway-event.json"
        gateway_event.write_text(
            json.dumps(
                generate_event(
                    {"model": procs.MODEL, "prompt": "a lighthouse", "response_format": "b64_json"}
                )
            ),
            encoding="utf-8",
        )
        gateway_env = {
            "IMAGEGW_API_KEYS": "sk-imagegw-dev",
            "OPENAI_API_KEY": procs.UPSTREAM_KEY,
            "OPENAI_BASE_URL": upstream.base_url,
        }
        minimal_env = {"IMAGEGW_BENCH_B64_FILE": str(b64_file)}
        runs: dict[str, list[dict[str, object]]] = {gateway.name: [], minimal.name: []}
        for index in range(samples):
            order = [(gateway, gateway_env), (minimal, minimal_env)]
            if index % 2:
                order.reverse()
            for side, env in order:
                report, _ = run_probe(python, side, gateway_event, warm, scratch, env)
                runs[side.name].append(report)
    for name, reports in runs.items():
        cold = [float(r["cold_cpu_s"]) for r in reports]  # type: ignore[arg-type]
        imported = [float(r["import_cpu_s"]) for r in reports]  # type: ignore[arg-type]
        warm_values = [float(v) for r in reports for v in r["warm_cpu_s"]]  # type: ignore[attr-defined]
        lines.append(
            f"| {name} | {ms(percentile(cold, 0.5))} ms | {ms(percentile(imported, 0.5))} ms"
            f" | {percentile(warm_values, 0.5) * 1000:.1f} / "
            f"{percentile(warm_values, 0.9) * 1000:.1f} ms |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--warm", type=int, default=30)
    arguments = parser.parse_args()
    require_builds()
    python = python312()
    with tempfile.TemporaryDirectory(prefix="imagegw-bench-lambda-") as name:
        scratch = Path(name)
        try:
            layer = as_deployed(BUILD_LAYER, scratch / "opt-after", bytecode=True)
            layer_before = as_deployed(BUILD_LAYER, scratch / "opt-before", bytecode=False)
            function = as_deployed(BUILD_FUNCTION, scratch / "task-after", bytecode=True)
            function_before = as_deployed(BUILD_FUNCTION, scratch / "task-before", bytecode=False)
            minimal_source = minimal_function(scratch, python)
            minimal = as_deployed(minimal_source, scratch / "minimal-after", bytecode=True)
            minimal_before = as_deployed(minimal_source, scratch / "minimal-before", bytecode=False)
            handler = "imagegw.entrypoints.handler"
            minimal_module = "bench.minimal_handler"
            sides = [
                Side("gateway, as deployed (.pyc)", handler, function, layer),
                Side("minimal, as deployed (.pyc)", minimal_module, minimal, layer),
                Side("gateway, before (no .pyc)", handler, function_before, layer_before),
                Side(
                    "minimal, before (no .pyc)",
                    "bench.minimal_handler",
                    minimal_before,
                    layer_before,
                ),
            ]
            print(f"python: {python}; samples: {arguments.samples}; load: {os.getloadavg()}")
            print()
            print("\n".join(cold_starts(python, sides, arguments.samples, scratch)))
            print()
            print(
                "\n".join(
                    cpu_per_invocation(
                        python, sides[0], sides[1], arguments.samples, arguments.warm, scratch
                    )
                )
            )
        finally:
            for path in scratch.rglob("*"):
                if path.is_dir():
                    path.chmod(0o755)
            scratch.chmod(0o755)


if __name__ == "__main__":
    main()
