"""One settings path: only `settings.py` (pydantic) and the instance's own config read the
environment; every other use of `os.environ` is listed here with its reason."""

from __future__ import annotations

import re
from pathlib import Path

import modelhost

SRC = Path(modelhost.__file__).parent

ALLOWED = {
    "compile/edge_serve.py": "the edge server (serve.py) runs without modelhost: its own config",
    "compile/native_c.py": "the C compiler named by CC, as build tools read it",
    "cli/server.py": "`demo --url --home`: hands --home to the settings its boto3 clients read",
    "container/config.py": "the instance's own config (MH_INSTANCE_*, the container contract)",
    "container/supervise.py": "hands the instance's explicit environment to the user's server",
    "container/zygote.py": "a forked instance takes the environment the gateway gave it",
    "fleet/local.py": "filters the gateway's environment through fleet/environment.py",
    "fleet/ray/actor.py": "a Ray node filters its own environment through fleet/environment.py",
    "frameworks/mlflow.py": "sets MLFLOW_DISABLE_TELEMETRY for mlflow; reads nothing",
    "testing/server.py": "the test kit starts a gateway with the caller's environment",
}


def test_nothing_else_reads_the_environment() -> None:
    readers = {
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if re.search(r"\bos\.(environ|getenv)\b|\bgetenv\(", path.read_text())
    }
    assert readers == set(ALLOWED)
