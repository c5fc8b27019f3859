"""The `imagegw` command against the `make dev` gateway under uvicorn: generate, models, keys.

The CLI runs in-process through click's runner (it talks HTTP to the server on 127.0.0.1).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from imagegw.cli.app import cli, main

from support.local_gateway import DEV_KEY, local_gateway
from support.servers import GatewayServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayServer]:
    with local_gateway(tmp_path) as server:
        yield server


def invoke(gateway: GatewayServer, *argv: str, key: str | None = DEV_KEY) -> Result:
    env = {"IMAGEGW_BASE_URL": gateway.base_url + "/v1"}
    if key is not None:
        env["IMAGEGW_API_KEY"] = key
    return CliRunner().invoke(cli, list(argv), env=env, catch_exceptions=False)


def test_generate_saves_each_image_and_a_metadata_file(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = invoke(
        gateway,
        "generate",
        "a lighthouse at dusk",
        "-m",
        "local/sketch",
        "-n",
        "3",
        "--size",
        "256x256",
        "--output-format",
        "jpeg",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    images = sorted(out.glob("*.jpg"))
    assert len(images) == 3
    for path in images:
        with Image.open(path) as image:
            assert (image.format, image.size) == ("JPEG", (256, 256))
    (meta_path,) = out.glob("*.json")
    meta = json.loads(meta_path.read_text())
    assert meta["request"] == {
        "prompt": "a lighthouse at dusk",
        "model": "local/sketch",
        "n": 3,
        "size": "256x256",
        "output_format": "jpeg",
    }
    assert meta["response"]["model"] == "local/sketch"
    assert meta["response"]["output_format"] == "jpeg"
    assert [entry["file"] for entry in meta["images"]] == [path.name for path in images]
    assert meta["request_id"].startswith("req_")
    assert "b64_json" not in meta_path.read_text()
    assert str(images[0]) in result.stdout


def test_generate_with_url_delivery_downloads_the_links(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = invoke(
        gateway,
        "generate",
        "a kite",
        "-m",
        "local/classic",
        "--style",
        "natural",
        "--response-format",
        "url",
        "-p",
        "quality=hd",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    (image,) = out.glob("*.png")
    with Image.open(image) as opened:
        assert opened.size == (1024, 1024)
    meta = json.loads(next(out.glob("*.json")).read_text())
    assert meta["request"]["quality"] == "hd"
    assert "signature" not in json.dumps(meta)  # links expire and their signature is a secret


def test_a_bad_parameter_is_the_servers_error_with_its_param(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    result = invoke(
        gateway, "generate", "a kite", "-m", "local/sketch", "--size", "7x7", "-o", str(tmp_path)
    )
    assert result.exit_code == 1
    assert "400" in result.stderr
    assert "(param: size)" in result.stderr
    assert "invalid_value" in result.stderr
    assert list(tmp_path.glob("*.png")) == []


def test_a_wrong_key_is_a_401_message(gateway: GatewayServer, tmp_path: Path) -> None:
    result = invoke(gateway, "models", key="sk-wrong")
    assert result.exit_code == 1
    assert "401" in result.stderr


def test_models_lists_the_catalog_and_json_has_capabilities(gateway: GatewayServer) -> None:
    table = invoke(gateway, "models")
    assert table.exit_code == 0, table.output
    assert "local/sketch" in table.stdout
    raw = invoke(gateway, "models", "--json")
    assert raw.exit_code == 0
    listed = {model["id"]: model for model in json.loads(raw.stdout)}
    assert listed["local/classic"]["capabilities"]["styles"] == ["vivid", "natural"]


def test_keys_runs_the_key_operations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    assert main(["keys", "--file", str(path), "create", "--name", "team-a"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("sk-imagegw-")
    assert key not in path.read_text()  # only its hash is stored
    assert main(["keys", "--file", str(path), "list"]) == 0
    assert capsys.readouterr().out.startswith("team-a\t")
    assert main(["keys", "--file", str(path), "revoke", "--name", "nobody"]) == 2
    assert main(["keys", "--help"]) == 0
    assert "usage: imagegw keys" in capsys.readouterr().out


def test_the_console_script_points_at_the_command() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"imagegw": "imagegw.cli.app:main"}
    assert main(["--version"]) == 0


def test_usage_reports_what_the_gateway_spent(gateway: GatewayServer, tmp_path: Path) -> None:
    generated = invoke(
        gateway, "generate", "a kite", "-m", "local/sketch", "-n", "2", "-o", str(tmp_path)
    )
    assert generated.exit_code == 0, generated.output
    result = invoke(gateway, "usage", "--group-by", "model")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("usage ")
    assert lines[0].endswith("(UTC), by model")
    assert lines[2].split() == ["local/sketch", "1", "2", "0.000000", "no", "0"]
    as_json = invoke(gateway, "usage", "--json")
    assert json.loads(as_json.output)["total"]["images"] == 2
    bad = invoke(gateway, "usage", "--start", "someday")
    assert bad.exit_code == 2
    assert "Invalid value for 'start'" in bad.output
