"""Loading a model's runtime from a local directory, shared by the single- and multi-model apps.

Nothing here imports a framework at module level: the registry and the framework are
imported on first use, in the worker thread, after the socket listens.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from modelhost.container.config import InstanceConfig

if TYPE_CHECKING:
    from modelhost.frameworks.base import Runtime, RuntimeOptions

log = logging.getLogger("modelhost.container")

# The library each runtime imports when it loads a model.
_FRAMEWORK_MODULES = {
    "xgboost": "xgboost",
    "sklearn": "sklearn",
    "lightgbm": "lightgbm",
    "onnx": "onnxruntime",
    "pytorch": "torch",
    "mlflow": "mlflow",
}


def runtime_options(config: InstanceConfig) -> RuntimeOptions:
    """The runtime options the instance's environment asks for."""
    from modelhost.frameworks.base import RuntimeOptions

    return RuntimeOptions(
        default_accept=config.default_accept,
        batch=config.batch,
        nthread=config.nthread,
        program=config.program,
        submit_dir=config.submit_dir,
        inference_output=config.inference_output,
        inference_supported=config.inference_supported,
        packages_dir=config.packages_dir,
        pip_timeout_s=config.pip_timeout_s,
        packages_cache_bytes=config.packages_cache_bytes,
        onnx_output=config.onnx_output,
        gpu=config.gpu,
    )


def load_runtime(runtime_name: str, path: Path, options: RuntimeOptions) -> Runtime:
    """Select the runtime for the files in `path` (`auto` guesses) and load the model."""
    from modelhost.frameworks.registry import select_runtime

    runtime = select_runtime(runtime_name, path, options)
    runtime.load(path)
    return runtime


def warm_up(runtime_name: str) -> None:
    """Import the framework the image names (not `auto`: that depends on each model),
    so the first load does not pay seconds for the import."""
    if runtime_name == "auto":
        return
    from modelhost.frameworks.registry import runtime_class

    try:
        runtime_class(runtime_name)
        if runtime_name in _FRAMEWORK_MODULES:
            importlib.import_module(_FRAMEWORK_MODULES[runtime_name])
    except Exception:
        log.exception("importing the %s runtime failed", runtime_name)


def default_budget_bytes() -> int:
    """Half of this machine's memory: the rest is the framework, the server and the OS."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 2 * 1024**3


def directory_bytes(path: Path) -> int:
    """Bytes of every regular file under `path` (the model's charge against the budget)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return max(total, 1)
