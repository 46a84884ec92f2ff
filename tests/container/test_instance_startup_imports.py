"""An instance binds its socket before it imports numpy or a framework: /ping answers
while the model loads (container/loading.py). The compiled tier keeps to that: what it
needs is imported in its own thread, after a model has loaded."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("numpy", "xgboost", "lightgbm", "treelite", "tl2cgen")


def test_importing_the_instance_app_leaves_numpy_and_the_frameworks_unimported() -> None:
    code = (
        "import sys, modelhost.container.app, modelhost.container.multimodel\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""
