"""The operator command ``python -m imagegw.cli.keys``: keys it creates work against a gateway that
reads the same secret (moto) or file; only hashes are stored; revoked keys stop working."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from api.api_support import GENERATIONS, assert_error, bearer, client_for

from imagegw.aws.secrets_cache import CachedSecret, secretsmanager_fetch
from imagegw.cli.keys import main
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings
from imagegw.state.auth import SecretKeyStore, hash_key

from support.aws import secret_text
from support.fakes import FakeClock, FakeProvider
from support.leaks import LeakWatch

SECRET = "imagegw/test/client-keys"
TTL = 300.0
HEX_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")
GENERATION = {"model": "local/sketch", "prompt": "a kite", "size": "256x256"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def create(capsys: pytest.CaptureFixture[str], *where: str, name: str, **options: Any) -> str:
    argv = [*where, "create", "--name", name]
    for scope in options.get("scopes", []):
        argv += ["--scope", scope]
    for model in options.get("models", []):
        argv += ["--model", model]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    (key,) = out.splitlines()  # the key, and nothing else, on stdout
    assert "only this once" in err
    return key


def secret_runtime(clock: FakeClock) -> Runtime:
    cache = CachedSecret(
        secretsmanager_fetch(SECRET),
        role="client keys secret",
        ttl_seconds=TTL,
        grace_seconds=3600,
        clock=clock,
    )
    return Runtime(
        Settings(log_level="DEBUG"),
        key_store=SecretKeyStore(cache),
        providers={"openai": FakeProvider()},
        clock=FakeClock(),
    )


def test_a_created_key_is_printed_once_stored_as_a_hash_and_works_until_revoked(
    mocked_aws: None, capsys: pytest.CaptureFixture[str], leak_watch: LeakWatch
) -> None:
    where = ("--secret-id", SECRET)
    first = create(capsys, *where, name="team-a")  # creates the secret
    second = create(
        capsys, *where, name="team-b", scopes=["models:read"], models=["local/*"]
    )  # adds to it
    leak_watch.secret(first, second)
    assert first != second
    assert first.startswith("sk-imagegw-")

    stored = secret_text(SECRET)
    assert first not in stored
    assert second not in stored
    document = json.loads(stored)
    assert document == {
        "keys": [
            {
                "name": "team-a",
                "sha256": hash_key(first),
                "scopes": ["images:generate", "models:read"],
            },
            {
                "name": "team-b",
                "sha256": hash_key(second),
                "scopes": ["models:read"],
                "models": ["local/*"],
            },
        ]
    }

    clock = FakeClock(5_000.0)
    with client_for(secret_runtime(clock)) as client:
        assert client.post(GENERATIONS, json=GENERATION, headers=bearer(first)).status_code == 200
        assert client.get("/v1/models", headers=bearer(second)).status_code == 200
        # team-b's scopes came through the secret too.
        assert_error(
            client.post(GENERATIONS, json=GENERATION, headers=bearer(second)),
            403,
            code="insufficient_scope",
        )

        code, _, err = run(capsys, *where, "revoke", "--name", "team-a")
        assert code == 0, err
        assert [entry["name"] for entry in json.loads(secret_text(SECRET))["keys"]] == ["team-b"]
        clock.now += TTL - 1
        assert client.get("/v1/models", headers=bearer(first)).status_code == 200
        clock.now += 1
        assert_error(client.get("/v1/models", headers=bearer(first)), 401, code="invalid_api_key")
        assert client.get("/v1/models", headers=bearer(second)).status_code == 200


def test_list_shows_names_scopes_and_models_but_never_keys_or_hashes(
    mocked_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    key = create(capsys, "--secret-id", SECRET, name="team-a", models=["openai/*"])
    code, out, err = run(capsys, "--secret-id", SECRET, "list")
    assert code == 0, err
    assert out.splitlines() == [
        "team-a\tscopes=images:generate,models:read\tmodels=openai/*\trate=-\tquota=-"
        "\tdaily_budget=-\tmonthly_budget=-"
    ]
    assert key not in out + err
    assert not HEX_DIGEST.search(out + err)


def test_the_secret_id_can_come_from_the_environment(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGEGW_CLIENT_KEYS_SECRET_ID", SECRET)
    key = create(capsys, name="team-env")
    assert json.loads(secret_text(SECRET))["keys"][0]["sha256"] == hash_key(key)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["create", "--name", "x"], "--secret-id", id="nowhere-to-store"),
        pytest.param(
            ["--secret-id", SECRET, "revoke", "--name", "nobody"], "no key named", id="unknown"
        ),
    ],
)
def test_operator_mistakes_exit_2_with_a_message(
    mocked_aws: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_a_name_cannot_be_created_twice(
    mocked_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create(capsys, "--secret-id", SECRET, name="team-a")
    code, out, err = run(capsys, "--secret-id", SECRET, "create", "--name", "team-a")
    assert code == 2
    assert out == ""  # no key printed for a key that was not stored
    assert "already exists" in err
    assert len(json.loads(secret_text(SECRET))["keys"]) == 1


# ---------------------------------------------------------------- local key file


def test_file_mode_keys_work_with_the_key_file_setting_and_revoke_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    key = create(capsys, "--file", str(path), name="laptop")
    stored = path.read_text(encoding="utf-8")
    assert key not in stored
    assert json.loads(stored)["keys"][0]["sha256"] == hash_key(key)
    assert path.stat().st_mode & 0o777 == 0o600

    runtime = Runtime(Settings(api_keys_file=path), clock=FakeClock())
    with client_for(runtime) as client:
        assert client.post(GENERATIONS, json=GENERATION, headers=bearer(key)).status_code == 200
        before = path.stat()
        code, _, err = run(capsys, "--file", str(path), "revoke", "--name", "laptop")
        assert code == 0, err
        # Two writes in one tick of the filesystem clock get the same mtime: the revocation
        # must be noticed anyway.
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert_error(client.get("/v1/models", headers=bearer(key)), 401, code="invalid_api_key")


def test_create_can_give_a_key_rate_and_quota_limits_the_gateway_enforces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    code, out, err = run(
        capsys, "--file", str(path), "create", "--name", "small", "--rate", "5", "--quota", "1"
    )
    assert code == 0, err
    key = out.strip()
    (entry,) = json.loads(path.read_text(encoding="utf-8"))["keys"]
    assert (entry["rate"], entry["quota"]) == (5, 1)
    code, out, _ = run(capsys, "--file", str(path), "list")
    assert "rate=5" in out
    assert "quota=1" in out

    runtime = Runtime(Settings(api_keys_file=path), clock=FakeClock())
    with client_for(runtime) as client:
        assert client.post(GENERATIONS, json=GENERATION, headers=bearer(key)).status_code == 200
        over = client.post(GENERATIONS, json=GENERATION, headers=bearer(key))
    assert_error(over, 429, code="insufficient_quota")


def test_create_refuses_limits_the_gateway_would_reject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    code, _, err = run(capsys, "--file", str(path), "create", "--name", "x", "--rate", "0")
    assert code == 2
    assert "'rate' must be a positive whole number" in err
    assert not path.exists()


def test_budgets_are_set_at_creation_changed_later_and_enforced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    where = ("--file", str(path))
    code, out, err = run(
        capsys, *where, "create", "--name", "team-a", "--daily-budget-usd", "0.25",
        "--monthly-budget-usd", "$40",
    )  # fmt: skip
    assert code == 0, err
    key = out.strip()
    (entry,) = json.loads(path.read_text(encoding="utf-8"))["keys"]
    assert (entry["daily_budget_usd"], entry["monthly_budget_usd"]) == (0.25, 40)
    code, out, _ = run(capsys, *where, "list")
    assert "daily_budget=$0.25\tmonthly_budget=$40.00" in out

    gpt = {"model": "gpt-image-2", "prompt": "a kite", "quality": "high", "size": "1024x1024"}
    runtime = Runtime(
        Settings(api_keys_file=path), providers={"openai": FakeProvider()}, clock=FakeClock()
    )
    with client_for(runtime) as client:
        # The first request may cost up to $0.211: it fits $0.25; a second would not.
        assert client.post(GENERATIONS, json=gpt, headers=bearer(key)).status_code == 200
        code, _, err = run(capsys, *where, "budget", "--name", "team-a", "--daily-usd", "0.1")
        assert code == 0, err
        refused = client.post(GENERATIONS, json=gpt, headers=bearer(key))
        assert_error(refused, 402, code="insufficient_balance", error_type="billing_error")
        code, _, err = run(capsys, *where, "budget", "--name", "team-a", "--daily-usd", "none")
        assert code == 0, err
        assert client.post(GENERATIONS, json=gpt, headers=bearer(key)).status_code == 200
    (entry,) = json.loads(path.read_text(encoding="utf-8"))["keys"]
    assert "daily_budget_usd" not in entry
    assert entry["monthly_budget_usd"] == 40


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["create", "--name", "x", "--daily-budget-usd", "lots"], "is not an amount of USD"),
        (["create", "--name", "x", "--monthly-budget-usd", "-5"], "must be a positive amount"),
        (["budget", "--name", "nobody", "--daily-usd", "1"], "no key named 'nobody'"),
        (["budget", "--name", "nobody"], "--daily-usd and/or --monthly-usd"),
    ],
)
def test_budget_mistakes_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, "--file", str(tmp_path / "keys.json"), *argv)
    assert code == 2
    assert message in err
