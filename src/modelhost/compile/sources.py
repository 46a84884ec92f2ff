"""The model a compilation job starts from: found in the artifact, loaded with its framework.

A `SourceModel` knows how its own framework predicts (the reference every compiled form is
checked against), how to hand itself to Treelite, and how to convert itself to ONNX.
Framework names are SageMaker's `InputConfig.Framework` values; LIGHTGBM is modelhost's
addition (botocore's enum lacks it, so a LightGBM model may also come as SKLEARN).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelhost.frameworks.base import describe_files, model_files
from modelhost.frameworks.lightgbm import is_pickled_lightgbm, starts_like_model_text
from modelhost.frameworks.xgboost import MODEL_FILE as XGBOOST_FILE
from modelhost.frameworks.xgboost import XGBoostRuntime, is_pickled_booster

TREE_FRAMEWORKS = ("XGBOOST", "LIGHTGBM", "SKLEARN")
SUPPORTED_FRAMEWORKS = (*TREE_FRAMEWORKS, "ONNX")


class CompileError(Exception):
    """The job cannot compile this model; the message becomes the job's FailureReason."""


@dataclass
class SourceModel:
    """A loaded model in its original framework (`kind`: xgboost, lightgbm, sklearn)."""

    kind: str
    obj: Any
    path: Path
    num_feature: int
    # "float32" for XGBoost (it scores float32), "float64" for the others.
    input_dtype: str
    output: str = "scores"
    classes: list[Any] = field(default_factory=list)
    cast_float32: bool = False
    allows_missing: bool = True

    def native_predict(self, rows: NDArray[Any]) -> NDArray[Any]:
        """What the framework answers, as n × outputs (the runtime's scores)."""
        if self.kind == "xgboost":
            out = self.obj.inplace_predict(rows.astype(np.float32), validate_features=False)
        elif self.kind == "lightgbm":
            out = self.obj.predict(rows.astype(np.float64), num_threads=1)
        elif hasattr(self.obj, "predict_proba"):
            out = self.obj.predict_proba(rows)
            out = out[:, 1] if out.shape[1] == 2 else out
        else:
            out = self.obj.predict(rows)
        out = np.asarray(out, dtype=np.float64)
        return out.reshape(out.shape[0], -1)

    def treelite_model(self) -> Any:
        import treelite

        if self.kind == "xgboost":
            raw = bytes(self.obj.save_raw("json"))
            return treelite.frontend.from_xgboost_json(raw.decode())
        if self.kind == "lightgbm":
            return treelite.frontend.from_lightgbm(self.obj)
        return treelite.sklearn.import_model(self.obj)


def _sklearn_kind(model: Any) -> str:
    name = f"{type(model).__module__}.{type(model).__name__}"
    if name.startswith("lightgbm."):
        return "lightgbm"
    if name.startswith("xgboost."):
        return "xgboost"
    if name.startswith("sklearn.ensemble."):
        return "sklearn"
    raise CompileError(
        f"The artifact holds a {name}; compilation supports tree ensembles: XGBoost, "
        "LightGBM, and scikit-learn RandomForest, ExtraTrees, GradientBoosting and "
        "HistGradientBoosting models"
    )


def _find(model_dir: Path, framework: str) -> tuple[str, Path]:
    files = model_files(model_dir)
    for path in files:
        suffix = path.suffix.lower()
        if framework in ("XGBOOST", "SKLEARN") and (
            path.name == XGBOOST_FILE
            or suffix in (".ubj", ".json", ".bst")
            or (suffix in (".pkl", ".pickle") and is_pickled_booster(path))
        ):
            return "xgboost", path
        if framework in ("LIGHTGBM", "SKLEARN") and starts_like_model_text(path):
            return "lightgbm", path
        if suffix in (".joblib", ".pkl", ".pickle") and framework != "XGBOOST":
            return ("lightgbm" if is_pickled_lightgbm(path) else "pickle"), path
    raise CompileError(
        f"No {framework} model found in the artifact: expected 'xgboost-model' or a "
        "*.json/*.ubj booster (XGBOOST), a LightGBM model.txt (LIGHTGBM), or a *.joblib/"
        f"*.pkl estimator (SKLEARN); files present: {describe_files(model_dir)}"
    )


def load_source(model_dir: Path, framework: str) -> SourceModel:
    """Find and load the model of `framework` in `model_dir` (an unpacked artifact)."""
    framework = framework.upper()
    if framework not in TREE_FRAMEWORKS:
        raise CompileError(
            f"Framework {framework} is not supported by modelhost's compiler: it compiles "
            f"tree ensembles ({', '.join(TREE_FRAMEWORKS)}) and ONNX graphs of them"
        )
    kind, path = _find(model_dir, framework)
    try:
        return _load(kind, path)
    except CompileError:
        raise
    except Exception as exc:
        raise CompileError(
            f"{path.name} could not be loaded as a {framework} model "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "is the artifact complete?"
        ) from None


def _load(kind: str, path: Path) -> SourceModel:
    if kind == "xgboost":
        return _xgboost(path)
    if kind == "lightgbm" and path.suffix.lower() not in (".joblib", ".pkl", ".pickle"):
        import lightgbm

        booster = lightgbm.Booster(model_file=str(path))
        return SourceModel("lightgbm", booster, path, booster.num_feature(), "float64")
    import joblib

    model = joblib.load(path)
    inner = _sklearn_kind(model)
    if inner == "lightgbm":
        booster = model.booster_ if hasattr(model, "booster_") else model
        return SourceModel("lightgbm", booster, path, booster.num_feature(), "float64")
    if inner == "xgboost":
        return _xgboost_object(model.get_booster() if hasattr(model, "get_booster") else model)
    # sklearn's trees compare float32 copies of the input, so the compiled model must too;
    # only HistGradientBoosting accepts missing values.
    hist = type(model).__name__.startswith("HistGradientBoosting")
    classes = [_plain(c) for c in getattr(model, "classes_", [])]
    return SourceModel(
        "sklearn",
        model,
        path,
        int(model.n_features_in_),
        "float64",
        output="labels" if classes else "scores",
        classes=classes,
        cast_float32=True,
        allows_missing=hist,
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _xgboost(path: Path) -> SourceModel:
    # The XGBoost runtime's own loader: the compiled model starts from exactly what that
    # runtime would serve (pickles, wrappers and extension-less files alike).
    runtime = XGBoostRuntime()
    runtime.load(path.parent)
    return _xgboost_object(runtime.model)


def _xgboost_object(booster: Any) -> SourceModel:
    booster.set_param({"nthread": 1})
    config = json.loads(booster.save_config())
    objective = config["learner"]["objective"]["name"]
    if objective == "multi:softmax":
        raise CompileError(
            "XGBoost objective multi:softmax is not supported by the compiler (it answers "
            "class indices, not scores); train with multi:softprob"
        )
    return SourceModel("xgboost", booster, Path(), int(booster.num_features()), "float32")
