"""The MLServer 1.7 baseline: its own virtualenv, tuned settings, and one V2 request body."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from _machine import package_version
from _proc import Managed, free_port

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venvs" / "mlserver"
REQUIREMENTS = BENCH_DIR / "mlserver_requirements.txt"
MODEL_NAME = "churn-xgb"


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _venv_versions() -> dict[str, str] | None:
    python = _venv_python()
    if not (python.exists() and (VENV / "bin" / "mlserver").exists()):
        return None
    probe = (
        "import json, importlib.metadata as m\n"
        "names = ['mlserver', 'mlserver-xgboost', 'xgboost', 'uvloop', 'httptools']\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return None
    versions: dict[str, str] = json.loads(result.stdout)
    return versions


def _usable(versions: dict[str, str] | None, xgboost_version: str | None) -> bool:
    if not versions or not versions.get("mlserver", "").startswith("1.7."):
        return False
    if not versions.get("mlserver-xgboost", "").startswith("1.7."):
        return False
    if "httptools" not in versions or versions.get("uvloop", "0.22") >= "0.22":
        return False
    return xgboost_version is None or versions.get("xgboost") == xgboost_version


def ensure_venv() -> dict[str, str]:
    """Create or reuse bench/.venvs/mlserver; return the versions installed there."""
    xgboost_version = package_version("xgboost")
    versions = _venv_versions()
    if _usable(versions, xgboost_version):
        assert versions is not None
        print(f"reusing {VENV} (mlserver {versions['mlserver']})", flush=True)
        return versions
    if versions is None and VENV.exists():
        shutil.rmtree(VENV)
    if not VENV.exists():
        print(f"creating {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    pins = ["-r", str(REQUIREMENTS)]
    if xgboost_version:
        pins.append(f"xgboost=={xgboost_version}")
    command = [str(_venv_python()), "-m", "pip", "install", "-q", *pins]
    print("installing MLServer: " + " ".join(command), flush=True)
    subprocess.run(command, check=True, timeout=1800)
    versions = _venv_versions()
    if not _usable(versions, xgboost_version):
        raise RuntimeError(f"{VENV} still lacks the pinned packages after pip: {versions}")
    assert versions is not None
    return versions


def write_model_repository(
    directory: Path, model_bytes: bytes, parallel_workers: int, batching: bool = False
) -> tuple[dict[str, object], str]:
    """settings.json and <model>/model-settings.json for the tuned setting of the perf notes.

    Debug (access log) off, metrics server off, gzip off, free loopback ports for HTTP and
    gRPC (MLServer always starts both). MLServer's xgboost runtime only accepts
    model.bst/.json/.ubj, so SageMaker's `xgboost-model` goes in as `model.ubj`.
    With `batching`, adaptive batching of 32 rows / 2 ms (the perf notes' best setting).
    Returns the settings and the HTTP base URL.
    """
    directory.mkdir(parents=True, exist_ok=True)
    http_port = free_port()
    grpc_port = free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    settings: dict[str, object] = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,
        "gzip_enabled": False,
        "parallel_workers": parallel_workers,
        "load_models_at_startup": True,
    }
    (directory / "settings.json").write_text(json.dumps(settings, indent=2))
    model_dir = directory / MODEL_NAME
    model_dir.mkdir(exist_ok=True)
    (model_dir / "model.ubj").write_bytes(model_bytes)
    model_settings: dict[str, object] = {
        "name": MODEL_NAME,
        "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./model.ubj", "version": "v1"},
    }
    if batching:
        model_settings.update({"max_batch_size": 32, "max_batch_time": 0.002})
        settings["model_settings"] = model_settings
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    return settings, f"http://127.0.0.1:{http_port}"


def start(directory: Path, log_path: Path) -> Managed:
    """Start `mlserver start <directory>` with one OpenMP thread per process."""
    # A stray MLSERVER_* variable in the caller's environment would override settings.json.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_")}
    env.update({"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    return Managed(
        "mlserver",
        [str(VENV / "bin" / "mlserver"), "start", str(directory)],
        log_path,
        env=env,
        cwd=directory,
    )


def v2_request(row: list[float]) -> str:
    """The V2 inference request for one row of 69 float32 features."""
    from modelhost.testing.churn import format_float32

    data = ",".join(format_float32(v) for v in row)
    return (
        f'{{"inputs":[{{"name":"predict","shape":[1,{len(row)}],'
        f'"datatype":"FP32","data":[{data}]}}]}}'
    )
