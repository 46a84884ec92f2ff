"""Bring your own server: a Node.js model server hosted like a built-in runtime."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import WaiterError

from modelhost.testing.server import ModelhostServer
from tests.support import Loop, deploy, instance_pids, unique

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
NODE_SERVER = ROOT / "examples" / "byoc-node" / "server.js"


@pytest.fixture(scope="module")
def node_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, float]:
    """A model dir with server.js and weights; returns (dir, coef, intercept)."""
    rng = np.random.default_rng(0)
    coef, intercept = rng.normal(size=5), 0.25
    model_dir = tmp_path_factory.mktemp("node-model")
    (model_dir / "model.json").write_text(
        json.dumps({"coef": coef.tolist(), "intercept": intercept})
    )
    shutil.copy(NODE_SERVER, model_dir / "server.js")
    return model_dir, coef, intercept


def _expected(row: list[float], coef: np.ndarray, intercept: float) -> float:
    z = intercept
    for w, x in zip(coef, row, strict=True):
        z += w * x
    return float(1 / (1 + np.exp(-z)))


def _node_pid(home: Path, endpoint: str) -> int:
    for pid in instance_pids(home, endpoint):
        if b"node" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
            return pid
    raise AssertionError("no node process")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _wait_replaced(server: ModelhostServer, name: str, gone: set[int], count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = instance_pids(server.home, name)
        if not pids & gone and len(pids) == count:
            return
        time.sleep(0.3)
    ps = subprocess.run(["ps", "-eo", "pid,ppid,stat,cmd"], capture_output=True, text=True)
    pytest.fail(f"not replaced: {instance_pids(server.home, name)} gone={gone}\n{ps.stdout}")


def test_node_server_serves_and_survives_kill_9(
    server: ModelhostServer, node_model: tuple[Path, np.ndarray, float]
) -> None:
    model_dir, coef, intercept = node_model
    sm, rt = server.clients()  # default retries, as a SageMaker user has them
    name = unique("node")
    deploy(sm, name, str(model_dir), image="command:node server.js", instances=2)
    row = [0.5, -1.0, 2.0, 0.0, 1.5]
    out = rt.invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body=",".join(map(repr, row))
    )
    assert out["ContentType"] == "text/csv"
    assert abs(float(out["Body"].read()) - _expected(row, coef, intercept)) <= 1e-12
    # The server's own errors come back as ModelError with its status.
    with pytest.raises(rt.exceptions.ModelError) as exc:
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="1,2")
    assert exc.value.response["OriginalStatusCode"] == 400

    # kill -9 the node process (the server itself) under a bounded request loop.
    pids = instance_pids(server.home, name)
    victim = _node_pid(server.home, name)
    victim_supervisor = _parent(victim)
    with Loop(rt, name, ",".join(map(repr, row))) as loop:
        loop.wait_ok(3)
        os.kill(victim, signal.SIGKILL)
        loop.wait_ok(5)  # answered after the kill
    assert loop.errors == [] and loop.ok > 5
    _wait_replaced(server, name, {victim, victim_supervisor}, len(pids))

    # kill -9 the supervisor: its server goes with it, and both are replaced.
    pids = instance_pids(server.home, name)
    node = _node_pid(server.home, name)
    supervisor = _parent(node)
    assert supervisor in pids
    os.kill(supervisor, signal.SIGKILL)
    _wait_replaced(server, name, {supervisor, node}, len(pids))
    out = rt.invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body=",".join(map(repr, row))
    )
    assert abs(float(out["Body"].read()) - _expected(row, coef, intercept)) <= 1e-12


def _failure(sm: Any, name: str) -> str:
    with pytest.raises(WaiterError):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.3, "MaxAttempts": 100}
        )
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "Failed"
    return str(desc["FailureReason"])


def test_container_image_without_an_engine_fails_with_reason(
    sm: Any, node_model: tuple[Path, np.ndarray, float]
) -> None:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    ):
        pytest.skip("a container engine runs here")
    name = unique("image")
    deploy(
        sm,
        name,
        str(node_model[0]),
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/my-server:1",
        wait=False,
    )
    reason = _failure(sm, name)
    assert "docker or podman" in reason and "command:" in reason


def test_missing_program_fails_with_reason(
    sm: Any, node_model: tuple[Path, np.ndarray, float]
) -> None:
    name = unique("noprog")
    deploy(sm, name, str(node_model[0]), image="command:no-such-server --fast", wait=False)
    assert "no-such-server" in _failure(sm, name)


def test_server_that_exits_at_once_fails_with_its_log(sm: Any, tmp_path: Path) -> None:
    script = tmp_path / "crash.sh"
    script.write_text("#!/bin/sh\necho 'cannot find my weights' >&2\nexit 3\n")
    script.chmod(0o755)
    name = unique("crash")
    deploy(sm, name, str(tmp_path), image=str(script), wait=False)
    reason = _failure(sm, name)
    assert "exited with status 3" in reason and "cannot find my weights" in reason


def test_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "byoc-node" / "run.py")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "max |diff|" in out.stdout
