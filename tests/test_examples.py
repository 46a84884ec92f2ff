"""Every example runs from a clean checkout and reports served == in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelhost.testing.server import ModelhostServer
from tests.support import unique

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.parametrize("script", ["sklearn/run.py", "script-mode/run.py", "pipeline/run.py"])
def test_example_starts_its_own_server(script: str, tmp_path: Path) -> None:
    _run([str(EXAMPLES / script)], tmp_path)


def test_churn_boto3_example_against_a_running_server(
    server: ModelhostServer, tmp_path: Path
) -> None:
    stdout = _run(
        [
            str(EXAMPLES / "churn" / "deploy_with_boto3.py"),
            "--endpoint-url",
            server.url,
            "--name",
            unique("churn-example"),
        ],
        tmp_path,
        # What `eval "$(modelhost credentials)"` exports.
        {
            "AWS_ACCESS_KEY_ID": server.credentials[0],
            "AWS_SECRET_ACCESS_KEY": server.credentials[1],
        },
    )
    assert "all rows in one request" in stdout


def test_safe_deployments_example(server: ModelhostServer, tmp_path: Path) -> None:
    stdout = _run(
        [
            str(EXAMPLES / "safe-deployments" / "run.py"),
            "--endpoint-url",
            server.url,
            "--prefix",
            unique("safe"),
        ],
        tmp_path,
        {
            "AWS_ACCESS_KEY_ID": server.credentials[0],
            "AWS_SECRET_ACCESS_KEY": server.credentials[1],
        },
    )
    assert "1. A/B split over 400 requests" in stdout
    assert "Update rolled back: alarm" in stdout and "RollingBack" in stdout
    assert "3. Shadow report (50 pairs)" in stdout
    assert "4. Bandit after 400 rewarded requests" in stdout


def test_autoscaling_example_follows_a_stepped_load(tmp_path: Path) -> None:
    stdout = _run([str(EXAMPLES / "autoscaling" / "run.py"), "--no-ha"], tmp_path)
    assert "failed requests during scale-out: 0 (no retries)" in stdout
    assert "failed requests during scale-in: 0 (no retries)" in stdout
    assert "load stopped: back to 1 instance" in stdout
