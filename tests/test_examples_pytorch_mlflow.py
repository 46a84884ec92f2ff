"""examples/pytorch and examples/mlflow run as a user runs them and exit 0."""

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
# Each run trains for ~1 s, starts a server (or not) and deploys one instance: ~5-10 s here.
TIMEOUT_S = 180


def _run(
    script: Path, tmp_path: Path, *args: str, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if home is not None:  # sign with that server's admin key, as on the server's machine
        env["MODELHOST_HOME"] = str(home)
    # Nothing should use MLflow tracking; if something did, it must not write ./mlruns.
    env["MLFLOW_TRACKING_URI"] = (tmp_path / "mlruns").as_uri()
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.rstrip().endswith("OK"), proc.stdout
    assert not (tmp_path / "mlruns").exists()
    return proc


@pytest.mark.parametrize("example", ["pytorch", "mlflow"])
def test_example_starts_its_own_server(example: str, tmp_path: Path) -> None:
    pytest.importorskip("torch" if example == "pytorch" else "mlflow")
    proc = _run(EXAMPLES / example / "run.py", tmp_path)
    assert "started modelhost at http://127.0.0.1:" in proc.stdout
    assert "largest difference" in proc.stdout


@pytest.mark.parametrize("example", ["pytorch", "mlflow"])
def test_example_against_a_running_server(
    example: str, server: ModelhostServer, tmp_path: Path
) -> None:
    pytest.importorskip("torch" if example == "pytorch" else "mlflow")
    name = unique(f"example-{example}")
    proc = _run(
        EXAMPLES / example / "run.py",
        tmp_path,
        "--endpoint-url",
        server.url,
        "--name",
        name,
        home=server.home,
    )
    assert "started modelhost" not in proc.stdout
    sm, _ = server.clients()
    # The example deleted what it created.
    assert name not in {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}
