"""Cold start: a fresh interpreter imports the Lambda handler and answers its first event.

Each sample is a new process, as a Lambda cold start is; the gateway and the minimal FastAPI +
Mangum handler (``bench/minimal_handler.py``) alternate sample by sample and answer the same
event from ``events/``. The probe times, inside the process, the import and the first answer; the
process's whole life (interpreter start included) is timed from outside as well.

This runs the source tree with the development interpreter and the bytecode it caches: a
comparison of the two handlers' own work. The artifact exactly as Lambda gets it (python3.12,
SAM's 1980-dated ZIP, read-only, the build's .pyc) is ``bench/lambda_artifact.py``.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procs import PACKAGE_DIR, REPO, child_environment
from bench.stats import percentile

PROBE = r"""
import json, sys, time

# Only what the Lambda function has: the layer's packages, boto3 (the runtime's) and the stdlib.
# Libraries import optional extras when they happen to be installed (httpx loads click and rich
# for its command line); the development venv must not make either side look slower.
blocked = frozenset(json.loads(sys.argv[3]))

class LambdaPackagesOnly:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, LambdaPackagesOnly())
started = time.perf_counter()
import importlib
module = importlib.import_module(sys.argv[1])
imported = time.perf_counter()
with open(sys.argv[2], encoding="utf-8") as file:
    event = json.load(file)

class Context:
    function_name = "bench"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self):
        return 29000

response = module.handler(event, Context())
answered = time.perf_counter()
print(json.dumps({
    "import": imported - started,
    "first_event": answered - imported,
    "status": response.get("statusCode"),
}))
"""

HANDLERS = {"gateway": "imagegw.entrypoints.handler", "minimal": "bench.minimal_handler"}
# What the Lambda Python runtime itself brings, on top of the layer.
RUNTIME_DISTRIBUTIONS = {
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "python-dateutil",
    "six",
}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def blocked_modules(repo: Path = REPO) -> list[str]:
    """Top-level modules of the installed distributions a Lambda function would not have (with
    the layer of the checkout at ``repo``)."""
    requirements = (repo / "layers" / "deps" / "requirements.txt").read_text(encoding="utf-8")
    allowed = {_normalize(d) for d in RUNTIME_DISTRIBUTIONS}
    for line in requirements.splitlines():
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match:
            allowed.add(_normalize(match.group(1)))
    blocked = {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if not any(_normalize(d) in allowed for d in distributions)
    }
    return sorted(blocked - set(sys.stdlib_module_names) - {"imagegw", "bench"})


@dataclass(frozen=True)
class Sample:
    import_s: float
    first_event_s: float
    process_s: float

    @property
    def in_process_s(self) -> float:
        return self.import_s + self.first_event_s


def sample(
    module: str, event_name: str, storage_dir: str, blocked: str, *, package_dir: Path = PACKAGE_DIR
) -> Sample:
    environment = child_environment(
        {"IMAGEGW_API_KEYS": "sk-imagegw-dev", "IMAGEGW_LOCAL_STORAGE_DIR": storage_dir},
        package_dir=package_dir,
    )
    # Both sides read .pyc files written by the warm-up. Inherited PYTHONDONTWRITEBYTECODE would
    # have the gateway compile its modules in every sample (about 20 ms more), the minimal
    # handler its one small module.
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    event_file = REPO / "events" / f"{event_name}.json"
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, module, str(event_file), blocked],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    process_s = time.perf_counter() - started
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    if report["status"] != 200:
        raise RuntimeError(f"{module} answered {event_name} with {report['status']}")
    return Sample(report["import"], report["first_event"], process_s)


@dataclass(frozen=True)
class ColdStart:
    event: str
    gateway: list[Sample]
    minimal: list[Sample]

    def medians(self, side: list[Sample]) -> tuple[float, float, float, float]:
        return (
            percentile([s.import_s for s in side], 0.5),
            percentile([s.first_event_s for s in side], 0.5),
            percentile([s.in_process_s for s in side], 0.5),
            percentile([s.process_s for s in side], 0.5),
        )

    @property
    def ratio(self) -> float:
        """Median of the paired ratios gateway / minimal, import + first event, in-process."""
        pairs = zip(self.gateway, self.minimal, strict=True)
        return percentile([g.in_process_s / m.in_process_s for g, m in pairs], 0.5)

    @property
    def process_ratio(self) -> float:
        pairs = zip(self.gateway, self.minimal, strict=True)
        return percentile([g.process_s / m.process_s for g, m in pairs], 0.5)


def measure(event_name: str, *, samples: int, warmup: int = 1) -> ColdStart:
    gateway: list[Sample] = []
    minimal: list[Sample] = []
    blocked = json.dumps(blocked_modules())
    with tempfile.TemporaryDirectory(prefix="imagegw-bench-") as storage_dir:
        for _ in range(warmup):  # compiles the .pyc files both sides then read
            sample(HANDLERS["gateway"], event_name, storage_dir, blocked)
            sample(HANDLERS["minimal"], event_name, storage_dir, blocked)
        for index in range(samples):
            order = ("gateway", "minimal") if index % 2 == 0 else ("minimal", "gateway")
            for side in order:
                taken = sample(HANDLERS[side], event_name, storage_dir, blocked)
                (gateway if side == "gateway" else minimal).append(taken)
    return ColdStart(event_name, gateway, minimal)
