"""Compilation jobs survive a server restart and stop at once on StopCompilationJob."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.testing.server import ModelhostServer
from tests.compile.conftest import tar_members
from tests.support import FAST_ENV

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/modelhost"


@pytest.fixture(scope="module")
def big_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Big enough that compiling takes seconds: time to stop or restart in between."""
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 30)).astype(np.float32)
    y = x[:, 0] * 3 + np.sin(x[:, 1]) + rng.normal(size=3000)
    booster = xgb.train(
        {"max_depth": 6, "nthread": 1, "seed": 0}, xgb.DMatrix(x, label=y), num_boost_round=250
    )
    root = tmp_path_factory.mktemp("big")
    return tar_members(root / "model.tar.gz", {"xgboost-model": bytes(booster.save_raw("ubj"))})


def _create(sm: Any, name: str, artifact: Path, out: Path) -> None:
    sm.create_compilation_job(
        CompilationJobName=name,
        RoleArn=ROLE,
        InputConfig={"S3Uri": str(artifact), "Framework": "XGBOOST"},
        OutputConfig={"S3OutputLocation": str(out), "TargetDevice": "ml_c5"},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )


def _wait(sm: Any, name: str, states: tuple[str, ...], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = str(sm.describe_compilation_job(CompilationJobName=name)["CompilationJobStatus"])
        if status in states:
            return status
        time.sleep(0.2)
    raise AssertionError(f"{name} never reached {states}")


def test_stop_ends_the_compiler_and_restart_resumes(big_artifact: Path, tmp_path: Path) -> None:
    with ModelhostServer(tmp_path / "home", env=FAST_ENV) as srv:
        sm, _ = srv.clients()
        _create(sm, "stopped-job", big_artifact, tmp_path / "out1")
        _wait(sm, "stopped-job", ("INPROGRESS",), 60)
        started = time.monotonic()
        sm.stop_compilation_job(CompilationJobName="stopped-job")
        assert _wait(sm, "stopped-job", ("STOPPED",), 30) == "STOPPED"
        assert time.monotonic() - started < 20
        with pytest.raises(sm.exceptions.ClientError, match="already exists"):
            _create(sm, "stopped-job", big_artifact, tmp_path / "out1")

        _create(sm, "resumed-job", big_artifact, tmp_path / "out2")
        _wait(sm, "resumed-job", ("INPROGRESS",), 60)
        srv.restart()
        sm, _ = srv.clients()
        assert _wait(sm, "resumed-job", ("COMPLETED", "FAILED"), 400) == "COMPLETED"
        job = sm.describe_compilation_job(CompilationJobName="resumed-job")
        assert Path(job["ModelArtifacts"]["S3ModelArtifacts"]).is_file()
