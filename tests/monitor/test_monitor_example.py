"""examples/monitor runs from a clean checkout and finds the drift it plants."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "monitor" / "run.py"


def test_monitor_example_finds_the_planted_drift(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "baseline_drift_check     Day Mins" in out.stdout
    assert "drift found in the shifted traffic only" in out.stdout
