"""The CLI: every command's shared options, and a real server driven through the API."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from modelhost.cli import main
from modelhost.cli.common import Target
from modelhost.gateway.auth.keys import KeyStore
from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.support import ChurnModel, cli, unique


def commands(group: click.Group, prefix: str = "modelhost") -> Iterator[tuple[str, click.Command]]:
    """Every command and group under `group`, by its full name."""
    for name, command in sorted(group.commands.items()):
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")


def test_every_command_takes_the_same_url_and_home() -> None:
    """One definition: same flags, same environment variables, same help, everywhere."""
    seen: dict[str, set[tuple[object, ...]]] = {"url": set(), "home": set()}
    found = 0
    for name, command in commands(main):
        if isinstance(command, click.Group) and not command.invoke_without_command:
            continue  # a group that only dispatches runs nothing of its own
        options = {p.name: p for p in command.params if isinstance(p, click.Option)}
        assert {"url", "home"} <= set(options), name
        for key in seen:
            opt = options[key]
            seen[key].add((tuple(opt.opts), opt.envvar, opt.help, opt.default))
        found += 1
    assert seen == {
        "url": {(("--url",), "MODELHOST_URL", seen["url"].copy().pop()[2], None)},
        "home": {(("--home",), "MODELHOST_HOME", seen["home"].copy().pop()[2], None)},
    }
    assert found >= 30


def test_url_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELHOST_URL", raising=False)
    monkeypatch.setenv("MODELHOST_PORT", "8111")
    home = tmp_path / "home"
    assert Target(None, home).url == "http://127.0.0.1:8111"
    KeyStore(home).record_url("http://127.0.0.1:9123")
    assert Target(None, home).url == "http://127.0.0.1:9123"
    assert Target("http://example:1", home).url == "http://example:1"


def test_credentials_reads_the_key_of_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MODELHOST_URL", "MODELHOST_HOME"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    runner = CliRunner()
    missing = runner.invoke(main, ["credentials", "--home", str(home)])
    assert missing.exit_code == 1 and "no admin key" in missing.output
    store = KeyStore(home)
    key_id, secret = store.create("admin", bootstrap=True)
    store.record_url("http://127.0.0.1:9124")
    out = runner.invoke(main, ["credentials", "--home", str(home)])
    assert out.exit_code == 0, out.output
    assert f"export AWS_ACCESS_KEY_ID={key_id}" in out.output.splitlines()
    assert "export AWS_ENDPOINT_URL_SAGEMAKER=http://127.0.0.1:9124" in out.output.splitlines()
    out = runner.invoke(main, ["credentials"], env={"MODELHOST_HOME": str(home)})
    assert f"export AWS_SECRET_ACCESS_KEY={secret}" in out.output.splitlines()
    out = runner.invoke(main, ["credentials", "--home", str(home), "--url", "http://h:1"])
    assert "export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://h:1" in out.output.splitlines()


@pytest.mark.integration
def test_keys_create_prints_export_lines_like_credentials(server: ModelhostServer) -> None:
    out = cli(server, "keys", "create", "--role", "invoker", "--format", "env")
    assert out.returncode == 0, out.stderr
    created = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines())
    creds = cli(server, "credentials")
    admin = dict(line.removeprefix("export ").split("=", 1) for line in creds.stdout.splitlines())
    assert list(created) == list(admin)
    assert created["AWS_ENDPOINT_URL_SAGEMAKER"] == server.url
    assert created["AWS_ACCESS_KEY_ID"] != admin["AWS_ACCESS_KEY_ID"]
    listed = cli(server, "keys", "list")
    assert created["AWS_ACCESS_KEY_ID"] in listed.stdout and "invoker" in listed.stdout
    cli(server, "keys", "revoke", created["AWS_ACCESS_KEY_ID"])


@pytest.mark.integration
def test_client_commands_take_home_and_url_options(server: ModelhostServer) -> None:
    # Options instead of environment variables: the same server, the same key.
    env = {k: v for k, v in os.environ.items() if k not in ("MODELHOST_URL", "MODELHOST_HOME")}
    args = ["--url", server.url, "--home", str(server.home)]
    out = subprocess.run(
        [sys.executable, "-m", "modelhost", "endpoints", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("NAME")


@pytest.mark.integration
def test_deploy_invoke_list_delete(server: ModelhostServer, churn_model: ChurnModel) -> None:
    name = unique("cli")
    out = cli(
        server,
        "deploy",
        str(churn_model.artifact),
        "--name",
        name,
        "--framework",
        "xgboost",
        "--instances",
        "1",
    )
    assert out.returncode == 0, out.stderr
    assert "InService" in out.stdout
    X = churn_model.data.X[:1]
    out = cli(server, "invoke", name, "--body", csv_rows(X)[0])
    assert out.returncode == 0, out.stderr
    assert abs(float(out.stdout) - float(churn_model.expected(X)[0])) <= 1e-6
    out = cli(server, "invoke", name, "--body", "1,2")
    assert out.returncode == 1
    assert "ModelError" in out.stderr and "69" in out.stderr
    out = cli(server, "endpoints")
    assert out.returncode == 0
    assert any(line.split()[:2] == [name, "InService"] for line in out.stdout.splitlines())
    out = cli(server, "delete", name)
    assert out.returncode == 0, out.stderr
    sm, _ = server.clients()
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
    )
    assert not sm.list_models(NameContains=name)["Models"]


@pytest.mark.integration
def test_deploy_reports_failure_reason(server: ModelhostServer, tmp_path: object) -> None:
    out = cli(server, "deploy", "/nonexistent/model.tar.gz", "--name", unique("cli-bad"))
    assert out.returncode == 1
    assert "Failed" in out.stderr and "/nonexistent/model.tar.gz" in out.stderr


def test_client_commands_explain_a_missing_server() -> None:
    env = {**os.environ, "MODELHOST_URL": "http://127.0.0.1:9"}
    out = subprocess.run(
        [sys.executable, "-m", "modelhost", "endpoints"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "modelhost serve" in out.stderr


@pytest.mark.integration
def test_deploy_containers_and_invoke_a_target_container(
    server: ModelhostServer, churn_model: ChurnModel, churn_model_small: ChurnModel
) -> None:
    name = unique("cli-mce")
    out = cli(
        server,
        "deploy-containers",
        name,
        "--container",
        f"big={churn_model.artifact}",
        "--container",
        f"small={churn_model_small.artifact}",
        "--image",
        "big=xgboost",
        "--env",
        "small:SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=application/json",
        "--mode",
        "Direct",
    )
    assert out.returncode == 0, out.stderr
    assert "InService (Direct: big, small)" in out.stdout
    X = churn_model.data.X[:1]
    row = csv_rows(X)[0]
    out = cli(server, "invoke", name, "--body", row, "--target-container", "big")
    assert out.returncode == 0, out.stderr
    assert abs(float(out.stdout) - float(churn_model.expected(X)[0])) <= 1e-6
    out = cli(server, "invoke", name, "--body", row, "--target-container", "small")
    assert out.returncode == 0, out.stderr
    assert '"predictions"' in out.stdout
    out = cli(server, "invoke", name, "--body", row)
    assert out.returncode == 1
    assert "ValidationError" in out.stderr and "TargetContainerHostname" in out.stderr
    out = cli(server, "deploy-containers", unique("cli-mce"), "--container", "nohost")
    assert out.returncode != 0 and "HOSTNAME=ARTIFACT" in out.stderr
    cli(server, "delete", name)
