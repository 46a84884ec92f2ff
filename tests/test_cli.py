"""The CLI drives a real server through the API."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.conftest import ChurnModel, unique

pytestmark = pytest.mark.integration


def cli(server: ModelhostServer, *args: str) -> subprocess.CompletedProcess[str]:
    # The CLI signs with the admin key of the server's home, as on the server's machine.
    env = {**os.environ, "MODELHOST_URL": server.url, "MODELHOST_HOME": str(server.home)}
    return subprocess.run(
        [sys.executable, "-m", "modelhost", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


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
