"""template.yaml: valid for cfn-lint, and pointing at code and dependencies that exist.

``sam build`` only finds out at build time that a handler path or a layer folder is wrong; these
checks find it in the test run.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    document, problems = decode_str(TEMPLATE.read_text(encoding="utf-8"))
    assert problems == [], problems
    assert isinstance(document, dict)
    return document


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource.get("Type") == kind
    }


def function_property(template: dict[str, Any], function: dict[str, Any], name: str) -> Any:
    """A function property, falling back to Globals.Function as SAM does."""
    properties = function.get("Properties", {})
    if name in properties:
        return properties[name]
    return template.get("Globals", {}).get("Function", {}).get(name)


@pytest.fixture(scope="module")
def gateway_function(template: dict[str, Any]) -> dict[str, Any]:
    functions = [
        resource
        for resource in resources_of_type(template, "AWS::Serverless::Function").values()
        if resource["Properties"].get("Handler") == "imagegw.handler.handler"
    ]
    assert len(functions) == 1, "exactly one function must use imagegw.handler.handler"
    return functions[0]


def python_minor(runtime: str) -> int:
    match = re.fullmatch(r"python3\.(\d+)", runtime)
    assert match, f"not a Python runtime: {runtime}"
    return int(match.group(1))


def test_cfn_lint_passes_without_findings() -> None:
    assert CFN_LINT.exists(), f"cfn-lint is not installed next to {sys.executable}"
    completed = subprocess.run(
        [str(CFN_LINT), str(TEMPLATE)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout == ""
    assert completed.stderr == ""


def test_template_is_a_sam_template(template: dict[str, Any]) -> None:
    transform = template["Transform"]
    transforms = transform if isinstance(transform, list) else [transform]
    assert "AWS::Serverless-2016-10-31" in transforms


def test_function_handler_points_at_the_handler_module(
    template: dict[str, Any], gateway_function: dict[str, Any]
) -> None:
    properties = gateway_function["Properties"]
    assert properties["Handler"] == "imagegw.handler.handler"
    assert properties["CodeUri"] == "functions/gateway"
    module_path = REPO / properties["CodeUri"] / "imagegw" / "handler.py"
    assert module_path.is_file()
    assert (module_path.parent / "__init__.py").is_file()
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    top_level = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "handler" in top_level


def test_function_runs_on_python_3_12_or_newer(
    template: dict[str, Any], gateway_function: dict[str, Any]
) -> None:
    runtime = function_property(template, gateway_function, "Runtime")
    assert isinstance(runtime, str)
    assert python_minor(runtime) >= 12


def test_dependencies_layer_is_built_from_pinned_requirements(
    template: dict[str, Any], gateway_function: dict[str, Any]
) -> None:
    layers = {
        name: resource
        for name, resource in resources_of_type(template, "AWS::Serverless::LayerVersion").items()
        if resource["Properties"].get("ContentUri") == "layers/deps"
    }
    assert len(layers) == 1
    (layer_name, layer) = next(iter(layers.items()))
    requirements = REPO / "layers" / "deps" / "requirements.txt"
    assert requirements.is_file()
    lines = [
        line.split("#")[0].strip()
        for line in requirements.read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    ]
    names = {re.split(r"[=<>!~\[; ]", line)[0].lower() for line in lines}
    assert {"fastapi", "mangum"} <= names
    unpinned = [line for line in lines if "==" not in line]
    assert unpinned == []

    # The function uses the layer, and the layer is built for the function's runtime.
    assert {"Ref": layer_name} in gateway_function["Properties"].get("Layers", [])
    runtime = function_property(template, gateway_function, "Runtime")
    assert runtime in layer["Properties"]["CompatibleRuntimes"]
    assert layer["Metadata"]["BuildMethod"] == runtime
    architectures = function_property(template, gateway_function, "Architectures") or ["x86_64"]
    for architecture in architectures:
        assert architecture in layer["Properties"].get("CompatibleArchitectures", ["x86_64"])


def test_api_events_cover_the_proxy_path_and_the_root(gateway_function: dict[str, Any]) -> None:
    routes: dict[str, set[str]] = {}
    for event in gateway_function["Properties"]["Events"].values():
        if event["Type"] in {"Api", "HttpApi"}:
            properties = event["Properties"]
            routes.setdefault(properties["Path"], set()).add(properties["Method"].upper())
    assert "/{proxy+}" in routes
    assert "/" in routes
    # The gateway serves GET (models, images by link) and POST (generations) under the proxy.
    proxy = routes["/{proxy+}"]
    assert "ANY" in proxy or {"GET", "POST"} <= proxy, proxy
