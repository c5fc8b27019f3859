"""What `sam build` produced is what the stack needs, and the built handler answers real events.

Run by `make package-check`, which first runs `sam build` (arm64, as deployed, into
.aws-sam/build) and a second `sam build` of the same template for x86_64 (into
.aws-sam/build-x86_64), and puts the runtime's boto3 into .aws-sam/lambda-runtime. This machine is
x86_64 and cannot load the arm64 layer's native modules, so the handler runs on the arm64 build's
function code (pure Python, checked identical to the source) with the x86_64 build of the same
pinned layer, under python3.12 as in Lambda.
"""

from __future__ import annotations

import base64
import filecmp
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.package

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / ".aws-sam" / "build"
BUILD_X86 = REPO / ".aws-sam" / "build-x86_64"
LAMBDA_RUNTIME = REPO / ".aws-sam" / "lambda-runtime"
SOURCE = REPO / "functions" / "gateway"
EVENTS = REPO / "events"
INVOKE = Path(__file__).with_name("invoke_built.py")
CHECK_BYTECODE = Path(__file__).with_name("check_bytecode.py")
LAYER = "DependenciesLayer"
FUNCTIONS = ("GatewayFunction", "WorkerFunction", "WebSocketFunction")
DEV_KEY = "sk-imagegw-dev"
ELF_MACHINE = {"aarch64": 183, "x86_64": 62}
# Lambda's limit for a function and its layers, unzipped.
UNZIPPED_LIMIT = 250 * 1024 * 1024


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def pinned_requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (REPO / "layers" / "deps" / "requirements.txt").read_text("utf-8").splitlines():
        line = raw.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonical(name.split("[")[0])] = version.strip()
    return pins


def installed_distributions(site: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for info in site.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        found[canonical(name)] = version
    return found


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    machine: int = struct.unpack_from("<H", header, 18)[0]
    return machine


def source_files(root: Path) -> set[Path]:
    return {
        path.relative_to(root)
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def require_build(path: Path) -> None:
    assert path.is_dir(), f"{path} is missing: run `make package-check` (it runs sam build)"


# ---------------------------------------------------------------------------- the arm64 build


@pytest.mark.parametrize("function", FUNCTIONS)
def test_built_function_is_exactly_the_package_source(function: str) -> None:
    built = BUILD / function
    require_build(built)
    # The package and nothing else: no tests, no requirements, no stray files.
    assert sorted(path.name for path in built.iterdir() if path.name != "__pycache__") == [
        "imagegw"
    ]
    package = SOURCE / "imagegw"
    assert source_files(built / "imagegw") == source_files(package)
    for relative in source_files(package):
        assert filecmp.cmp(package / relative, built / "imagegw" / relative, shallow=False), (
            relative
        )


def test_built_layer_holds_every_pinned_dependency_at_its_version() -> None:
    site = BUILD / LAYER / "python"
    require_build(site)
    installed = installed_distributions(site)
    pins = pinned_requirements()
    assert {name: installed.get(name) for name in pins} == pins
    # Nothing the pins did not ask for: the pins are complete, so every build is the same.
    assert set(installed) == set(pins)


def test_built_layer_native_code_is_for_arm64_and_cpython_3_12() -> None:
    site = BUILD / LAYER / "python"
    require_build(site)
    extensions = list(site.rglob("*.so"))
    assert extensions, "pydantic_core and Pillow ship native extensions"
    for extension in extensions:
        assert elf_machine(extension) == ELF_MACHINE["aarch64"], extension
        tag = re.search(r"\.(cpython-\d+-[^.]+|abi3)\.so$", extension.name)
        if tag:  # bundled libraries (pillow.libs/*.so.N) carry no Python tag
            assert tag.group(1) in {"cpython-312-aarch64-linux-gnu", "abi3"}, extension


def test_built_function_and_layer_fit_lambdas_unzipped_limit() -> None:
    require_build(BUILD / LAYER)
    size = sum(
        path.stat().st_size
        for root in (BUILD / LAYER, BUILD / "GatewayFunction")
        for path in root.rglob("*")
        if path.is_file()
    )
    assert size < UNZIPPED_LIMIT


def test_built_template_points_at_the_built_artifacts() -> None:
    built_template = (BUILD / "template.yaml").read_text(encoding="utf-8")
    for function in FUNCTIONS:
        assert f"CodeUri: {function}" in built_template
    assert f"ContentUri: {LAYER}" in built_template


# ---------------------------------------------------------------------------- running the build


def python312() -> str:
    candidate = os.environ.get("PACKAGE_CHECK_PYTHON") or shutil.which("python3.12")
    assert candidate, "no python3.12: `make package-check` finds one (see the Makefile)"
    return candidate


def invoke(
    event_name: str,
    tmp_path: Path,
    *,
    function: Path = BUILD / "GatewayFunction",
    layer: Path = BUILD_X86 / LAYER / "python",
) -> dict[str, Any]:
    for path in (function, layer, LAMBDA_RUNTIME):
        require_build(path)
    result_file = tmp_path / "result.json"
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        # The Lambda runtime's sys.path order: function code, then layers, then the runtime.
        "PYTHONPATH": os.pathsep.join(str(path) for path in (function, layer, LAMBDA_RUNTIME)),
        "PYTHONNOUSERSITE": "1",
        # Lambda's code directories are read-only, so Python writes no bytecode there; this
        # stands in for that (read-only modes do not stop root, which CI may run as).
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "TMPDIR": str(tmp_path),
        "IMAGEGW_API_KEYS": DEV_KEY,
        "IMAGEGW_LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": "imagegw",
        "POWERTOOLS_METRICS_NAMESPACE": "imagegw",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    completed = subprocess.run(
        [
            python312(),
            str(INVOKE),
            "imagegw.entrypoints.handler.handler",
            str(EVENTS / f"{event_name}.json"),
            str(result_file),
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
    # The code came from the arm64 build, the native dependencies from the x86_64 layer,
    # and the interpreter was the Lambda runtime's version.
    assert report["python"] == [3, 12]
    assert Path(report["handler_module"]).is_relative_to(function)
    assert Path(report["pydantic_core"]).is_relative_to(layer)
    return report


def body_of(response: dict[str, Any]) -> bytes:
    body = response.get("body") or ""
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode("utf-8")


def test_built_handler_lists_models_for_a_rest_api_event(tmp_path: Path) -> None:
    response = invoke("rest-v1-models", tmp_path)["result"]
    assert response["statusCode"] == 200
    listing = json.loads(body_of(response))
    assert listing["object"] == "list"
    assert "local/sketch" in {model["id"] for model in listing["data"]}


def test_built_handler_generates_an_image_for_a_rest_api_event(tmp_path: Path) -> None:
    response = invoke("rest-v1-generate", tmp_path)["result"]
    assert response["statusCode"] == 200, body_of(response)[:500]
    (image,) = json.loads(body_of(response))["data"]
    png = base64.b64decode(image["b64_json"])
    # Drawn by Pillow from the layer: a real PNG of the requested 256x256.
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (256, 256)


# ---------------------------------------------------------------------------- bytecode


# SAM's ZIP entries carry no date: Lambda unpacks every file as 1980-01-01 00:00 UTC.
ZIP_EPOCH = 315_532_800


def check_bytecode(*roots: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [python312(), str(CHECK_BYTECODE), *map(str, roots)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


@pytest.mark.parametrize(
    "root",
    [*(BUILD / function for function in FUNCTIONS), BUILD / LAYER / "python"],
    ids=[*FUNCTIONS, "layer"],
)
def test_built_artifact_ships_unchecked_hash_bytecode_for_every_module(root: Path) -> None:
    require_build(root)
    report = check_bytecode(root)
    assert report["checked"] > 50
    assert report["problems"] == {}


def as_deployed(source: Path, target: Path) -> Path:
    """A copy dated as SAM's ZIP dates it, read-only as /var/task and /opt are (for a user
    other than root; PYTHONDONTWRITEBYTECODE covers root)."""
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        os.utime(path, (ZIP_EPOCH, ZIP_EPOCH), follow_symlinks=False)
    for path in [*target.rglob("*"), target]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return target


def writable_again(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def test_built_handler_answers_from_bytecode_alone_with_zip_dates(tmp_path: Path) -> None:
    require_build(BUILD / "GatewayFunction")
    require_build(BUILD_X86 / LAYER / "python")
    function = as_deployed(BUILD / "GatewayFunction", tmp_path / "var-task")
    layer = as_deployed(BUILD_X86 / LAYER / "python", tmp_path / "opt-python")
    before = files_under(function) | files_under(layer)
    try:
        report = invoke("rest-v1-generate", tmp_path, function=function, layer=layer)
    finally:
        writable_again(function)
        writable_again(layer)
    assert report["result"]["statusCode"] == 200
    # Not one module of the function or the layer compiled from source on this cold start...
    ours = [
        path
        for path in report["compiled_from_source"]
        if Path(path).is_relative_to(function) or Path(path).is_relative_to(layer)
    ]
    assert ours == []
    # ...and nothing written next to the sources.
    assert files_under(function) | files_under(layer) == before


def test_without_bytecode_the_same_cold_start_compiles_from_source(tmp_path: Path) -> None:
    # The control: what the build shipped before (no .pyc) is seen compiling by the same probe.
    require_build(BUILD / "GatewayFunction")
    source = tmp_path / "source-only"
    shutil.copytree(BUILD / "GatewayFunction", source, ignore=shutil.ignore_patterns("__pycache__"))
    function = as_deployed(source, tmp_path / "var-task")
    try:
        report = invoke("rest-v1-models", tmp_path, function=function)
    finally:
        writable_again(function)
    compiled = [p for p in report["compiled_from_source"] if Path(p).is_relative_to(function)]
    assert any(path.endswith("entrypoints/handler.py") for path in compiled)
