"""The LightGBM and ONNX examples run end to end (each starts its own server) and exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("example", ["lightgbm", "onnx"])
def test_example_runs_and_matches_in_process(example: str) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / example / "run.py")],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=EXAMPLES.parent,
    )
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    assert out.stdout.rstrip().endswith("OK")
