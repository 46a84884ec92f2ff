"""Exactly-once output when an instance is killed mid-job and when the server restarts."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.jobs.support import native, transform, wait_for
from tests.support import (
    FAST_ENV,
    XGBOOST_IMAGE,
    ChurnModel,
    forked_instances,
    instance_pids,
    unique,
)

pytestmark = pytest.mark.integration

N_RECORDS = 1500


def _instance_pids(home: Path, job: str) -> set[int]:
    """The job's own instance processes (tests.support.instance_pids says how)."""
    return instance_pids(home, f"transform-{job}")


def _slow_job(sm: Any, model: str, tmp_path: Path, X: np.ndarray) -> str:
    """One request per record and one in flight, so the job is still running when we
    break something."""
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "x.csv").write_text("\n".join(csv_rows(X)) + "\n")
    d = transform(
        sm,
        model,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        wait=False,
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=1,
    )
    return str(d["TransformJobName"])


def _records_done(url: str, job: str) -> int:
    return int(native(url, f"/api/transform-jobs/{job}")["Modelhost"]["Progress"]["RecordsDone"])


def _wait_done(sm: Any, job: str) -> dict[str, Any]:
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName=job, WaiterConfig={"Delay": 0.2, "MaxAttempts": 900}
    )
    return dict(sm.describe_transform_job(TransformJobName=job))


def _check_exactly_once(path: Path, expected: np.ndarray) -> None:
    lines = path.read_text().splitlines()
    assert len(lines) == len(expected)
    np.testing.assert_allclose(np.array(lines, dtype=np.float32), expected, rtol=1e-6)


def test_instance_killed_mid_job(
    sm: Any, server: ModelhostServer, churn_model: ChurnModel, churn_model_name: str, tmp_path: Path
) -> None:
    X = churn_model.data.X[:N_RECORDS]
    job = _slow_job(sm, churn_model_name, tmp_path, X)
    wait_for(lambda: _records_done(server.url, job) >= 100)
    pids = _instance_pids(server.home, job)
    # The job's instance was forked from the runtime's zygote (its workers from it).
    assert forked_instances(server.home, f"transform-{job}")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert _records_done(server.url, job) < N_RECORDS  # the kill happened mid-job
    d = _wait_done(sm, job)
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    _check_exactly_once(tmp_path / "out" / "x.csv.out", churn_model.expected(X))


def test_server_killed_and_restarted_mid_job(churn_model: ChurnModel, tmp_path: Path) -> None:
    X = churn_model.data.X[:N_RECORDS]
    with ModelhostServer(tmp_path / "home", env=FAST_ENV) as srv:
        sm, _ = srv.clients(retries={"max_attempts": 1, "mode": "standard"})
        model = unique("restart")
        sm.create_model(
            ModelName=model,
            PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
        )
        job = _slow_job(sm, model, tmp_path, X)
        wait_for(lambda: _records_done(srv.url, job) >= 200)
        assert srv.proc is not None
        srv.proc.kill()  # no shutdown at all: the part files are all that is left
        srv.proc.wait()
        srv.proc = None
        assert not (tmp_path / "out" / "x.csv.out").exists()  # killed mid-job
        srv.start()
        d = _wait_done(sm, job)
        assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
        _check_exactly_once(tmp_path / "out" / "x.csv.out", churn_model.expected(X))


def test_stop_mid_job(
    sm: Any, server: ModelhostServer, churn_model: ChurnModel, churn_model_name: str, tmp_path: Path
) -> None:
    job = _slow_job(sm, churn_model_name, tmp_path, churn_model.data.X[:N_RECORDS])
    wait_for(lambda: _records_done(server.url, job) >= 50)
    sm.stop_transform_job(TransformJobName=job)
    d = _wait_done(sm, job)  # the waiter succeeds on Stopped
    assert d["TransformJobStatus"] == "Stopped"
    assert "TransformEndTime" in d
    assert not (tmp_path / "out" / "x.csv.out").exists()
    assert not _instance_pids(server.home, job)


def test_warm_instances_are_reused_by_the_next_job(churn_model: ChurnModel, tmp_path: Path) -> None:
    env = {**FAST_ENV, "MODELHOST_TRANSFORM_KEEP_ALIVE_S": "30"}
    X = churn_model.data.X[:50]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.csv").write_text("\n".join(csv_rows(X)) + "\n")
    with ModelhostServer(tmp_path / "home", env=env) as srv:
        sm, _ = srv.clients()
        model = unique("warm")
        sm.create_model(
            ModelName=model,
            PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
        )
        first = transform(sm, model, str(tmp_path / "in"), str(tmp_path / "out1"))
        kept = _instance_pids(srv.home, first["TransformJobName"])
        assert kept  # still running after the job, waiting for the next one
        second = transform(sm, model, str(tmp_path / "in"), str(tmp_path / "out2"))
        assert second["TransformJobStatus"] == "Completed", second.get("FailureReason")
        assert not _instance_pids(srv.home, second["TransformJobName"])  # none of its own
        assert _instance_pids(srv.home, first["TransformJobName"]) == kept
        _check_exactly_once(tmp_path / "out2" / "x.csv.out", churn_model.expected(X))
