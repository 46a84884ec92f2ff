"""The gateway's start-up does not import what only monitoring jobs use: scipy.stats and
scikit-learn took 1.3 s of a 2.5 s import, paid by every `modelhost serve` (and every
server the tests start) for jobs most gateways never run."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("scipy.stats", "sklearn", "pandas")


def test_importing_the_gateway_app_leaves_the_monitoring_libraries_unimported() -> None:
    code = (
        "import sys, modelhost.gateway.app\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""
