"""Runtime selection: `MH_INSTANCE_RUNTIME` plus what the model directory holds.

To add a framework: write `frameworks/<name>.py` with a `Runtime` subclass and add one
line to `RUNTIMES` (and its name to `AUTO_DETECT`, in priority order, if it can be
recognised from its files). Runtime modules are imported only when a model needs them
(or when auto-detection asks them), so an instance never imports a heavy framework it
does not serve, and a missing optional framework only matters to models that use it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from modelhost.errors import ModelLoadError
from modelhost.frameworks.base import Runtime, RuntimeOptions, describe_files
from modelhost.frameworks.compiled import MARKER as COMPILED_MARKER
from modelhost.frameworks.script import ScriptRuntime

# name -> "module:Class". The names are what MH_INSTANCE_RUNTIME and image URIs select.
RUNTIMES: dict[str, str] = {
    "xgboost": "modelhost.frameworks.xgboost:XGBoostRuntime",
    "sklearn": "modelhost.frameworks.sklearn:SklearnRuntime",
    "lightgbm": "modelhost.frameworks.lightgbm:LightGBMRuntime",
    "onnx": "modelhost.frameworks.onnx:ONNXRuntime",
    "pytorch": "modelhost.frameworks.pytorch:PyTorchRuntime",
    "mlflow": "modelhost.frameworks.mlflow:MLflowRuntime",
    "compiled": "modelhost.frameworks.compiled:CompiledRuntime",
}

# First match wins: an MLmodel folder may hold a pickle; an xgboost pickle also matches
# sklearn's *.pkl pattern.
AUTO_DETECT: list[str] = ["compiled", "mlflow", "xgboost", "lightgbm", "onnx", "pytorch", "sklearn"]


def runtime_class(name: str) -> type[Runtime]:
    """Import and return the runtime class registered under `name`."""
    try:
        target = RUNTIMES[name]
    except KeyError:
        raise ModelLoadError(
            f"Unknown runtime {name!r}: set MH_INSTANCE_RUNTIME to one of auto, "
            f"{', '.join(RUNTIMES)}"
        ) from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(
            f"The {name} runtime is not available in this installation ({exc}); install it "
            f"with: pip install 'modelhost[{name}]'"
        ) from exc
    cls: type[Runtime] = getattr(module, attr)
    return cls


def _detect(model_dir: Path) -> type[Runtime] | None:
    for name in AUTO_DETECT:
        try:
            cls = runtime_class(name)
        except ModelLoadError:
            continue  # an optional framework that is not installed cannot be the one
        if cls.detect(model_dir):
            return cls
    return None


DEFAULT_PROGRAM = "inference"


def script_path(model_dir: Path, options: RuntimeOptions) -> Path:
    """Where the script-mode entry point lives (it may not exist)."""
    submit_dir = options.submit_dir or model_dir / "code"
    return submit_dir / f"{options.program or DEFAULT_PROGRAM}.py"


def select_runtime(name: str, model_dir: Path, options: RuntimeOptions | None = None) -> Runtime:
    """The runtime for `name` (`auto`, `xgboost`, `sklearn`) and `model_dir`, not yet loaded.

    A script (`code/inference.py` or `SAGEMAKER_PROGRAM`) wraps the framework runtime
    in `ScriptRuntime`, as SageMaker's framework containers do. Raises `ModelLoadError`
    when nothing fits; its message becomes the endpoint's FailureReason.
    """
    options = options or RuntimeOptions()
    key = (name or "auto").strip().lower()
    base_cls: type[Runtime] | None
    if key != "compiled" and (model_dir / COMPILED_MARKER).is_file():
        # A compiled artifact serves compiled whatever image names its framework.
        key = "compiled"
    base_cls = _detect(model_dir) if key == "auto" else runtime_class(key)
    base = base_cls(options) if base_cls is not None else None
    script = script_path(model_dir, options)
    if script.is_file():
        return ScriptRuntime(script, base, options)
    if options.program:
        raise ModelLoadError(
            f"SAGEMAKER_PROGRAM is {options.program}.py but {script} does not exist: "
            "ship the script in the model's code/ directory or unset SAGEMAKER_PROGRAM"
        )
    if base is None:
        raise ModelLoadError(
            f"No model file found in {model_dir}: expected 'xgboost-model' or a *.json/*.ubj "
            "file (xgboost), a *.joblib/*.pkl file (sklearn), a LightGBM model.txt, a *.onnx "
            "graph, a TorchScript *.pt, an MLflow MLmodel folder, or code/inference.py with "
            f"model_fn; files present: {describe_files(model_dir)}"
        )
    return base
