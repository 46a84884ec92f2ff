"""Runtime selection: `MODELHOST_RUNTIME` plus what the model directory holds.

To add a framework: write `frameworks/<name>.py` with a `Runtime` subclass, add it to
`RUNTIMES`, and (if it can be recognised from its files) to `AUTO_DETECT` in priority
order. Runtimes are imported here eagerly but import their framework lazily in
`load`, so listing one costs nothing for instances that serve another.
"""

from __future__ import annotations

from pathlib import Path

from modelhost.frameworks.base import Runtime, RuntimeOptions, describe_files
from modelhost.frameworks.errors import ModelLoadError
from modelhost.frameworks.script import ScriptRuntime
from modelhost.frameworks.sklearn import SklearnRuntime
from modelhost.frameworks.xgboost import XGBoostRuntime

RUNTIMES: dict[str, type[Runtime]] = {
    XGBoostRuntime.name: XGBoostRuntime,
    SklearnRuntime.name: SklearnRuntime,
}

# First match wins: an xgboost pickle also matches sklearn's *.pkl pattern.
AUTO_DETECT: list[type[Runtime]] = [XGBoostRuntime, SklearnRuntime]

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
    if key == "auto":
        base_cls = next((cls for cls in AUTO_DETECT if cls.detect(model_dir)), None)
    elif key in RUNTIMES:
        base_cls = RUNTIMES[key]
    else:
        raise ModelLoadError(
            f"Unknown runtime {name!r}: set MODELHOST_RUNTIME to one of auto, {', '.join(RUNTIMES)}"
        )
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
            "file (xgboost), a *.joblib/*.pkl file (sklearn), or code/inference.py with "
            f"model_fn; files present: {describe_files(model_dir)}"
        )
    return base
