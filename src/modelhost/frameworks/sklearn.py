"""scikit-learn runtime, like SageMaker's scikit-learn container with default handlers.

Loads `model.joblib` (or another *.joblib/*.pkl/*.pickle) with joblib, decodes CSV,
JSON, JSON Lines and NPY into float arrays, predicts with `model.predict` and answers
JSON (`json.dumps(prediction.tolist())`) by default. Inputs are decoded as float64,
not the toolkit's float32: estimators fitted on float64 then see exactly the values
the client sent.

A tree estimator (forests, gradient boosting, a single tree: `sklearn_trees.tree_kind`)
may be served from its compiled form once the compiled tier has checked it answers with
the same bits (container/compile_tier.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modelhost.errors import InvalidInput, ModelLoadError, PredictionFailed
from modelhost.frameworks.base import CompiledForm, Runtime, describe_files, model_files
from modelhost.frameworks.sklearn_trees import SklearnCompiled, tree_kind

SUFFIXES = (".joblib", ".pkl", ".pickle")
PREFERRED = "model.joblib"


class SklearnRuntime(Runtime):
    """Serves a pickled/joblib scikit-learn estimator (anything with `.predict`).

    `MH_INSTANCE_RUNTIME=sklearn`, or chosen by auto-detection for *.joblib/*.pkl files
    that do not hold a raw xgboost Booster. Requests without Content-Type are JSON when
    the body starts with '[' or '{', CSV otherwise.
    """

    name: ClassVar[str] = "sklearn"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model: Any = None

    @classmethod
    def detect(cls, model_dir: Path) -> bool:
        return any(p.suffix.lower() in SUFFIXES for p in model_files(model_dir))

    @property
    def model(self) -> Any:
        return self._model

    def load(self, model_dir: Path) -> None:
        import joblib  # deferred: keeps the instance's socket bind fast

        path = self._find_model_file(model_dir)
        try:
            model = joblib.load(path)
        except Exception as exc:
            raise ModelLoadError(
                f"{path.name} could not be loaded with joblib: {type(exc).__name__}: {exc}"
            ) from None
        kind = f"{type(model).__module__}.{type(model).__name__}"
        if kind == "xgboost.core.Booster":
            raise ModelLoadError(
                f"{path.name} holds a raw xgboost Booster: use MH_INSTANCE_RUNTIME=xgboost "
                "(or auto) so it is served by the xgboost runtime"
            )
        if not callable(getattr(model, "predict", None)):
            raise ModelLoadError(
                f"{path.name} holds a {kind}, which has no predict method: save a fitted "
                "estimator, or add code/inference.py with model_fn/predict_fn"
            )
        self._model = model
        # Per model: only tree estimators go to the compiled tier (`compile.tier`).
        self.tree_framework = "SKLEARN" if tree_kind(model) else None  # type: ignore[misc]
        self.model_dir = model_dir

    def _find_model_file(self, model_dir: Path) -> Path:
        files = [p for p in model_files(model_dir) if p.suffix.lower() in SUFFIXES]
        for path in files:
            if path.name == PREFERRED:
                return path
        if files:
            return files[0]
        raise ModelLoadError(
            f"No model file found in {model_dir}: expected '{PREFERRED}' or a *.joblib/*.pkl "
            f"file for the sklearn runtime; files present: {describe_files(model_dir)}"
        )

    def predict(self, data: Any) -> Any:
        model = self._model
        if getattr(data, "ndim", 2) == 1:
            data = np.asarray(data).reshape(1, -1)
        expected = getattr(model, "n_features_in_", None)
        width = data.shape[1] if getattr(data, "ndim", 0) == 2 else None
        if isinstance(expected, int) and width is not None and width != expected:
            raise InvalidInput(
                f"Feature count mismatch: the model expects {expected} features, row 1 has {width}"
            )
        if (compiled := self.compiled) is not None and (out := compiled.predict(data)) is not None:
            return out
        try:
            return model.predict(data)
        except (ValueError, TypeError) as exc:
            # sklearn signals bad input (NaN, wrong dtype, unseen shapes) with these.
            raise PredictionFailed(f"Prediction failed: {exc}") from None

    def attach_compiled(self, predictor: CompiledForm) -> bool:
        """The tier's predictor computes raw scores; answer as `model.predict` does."""
        from modelhost.frameworks.compiled_predictor import CompiledPredictor

        if not isinstance(predictor, CompiledPredictor) or self._model is None:
            return False
        return super().attach_compiled(SklearnCompiled(predictor, self._model))

    def unload(self) -> None:
        self._model = None
        super().unload()
