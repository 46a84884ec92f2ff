"""scikit-learn tree ensembles in the compiled tier: which estimators qualify, what their
compiled form computes, and how its output becomes the answer `model.predict` gives.

The compiled library (compile/tier.py, via Treelite) computes each estimator's raw
scores: a forest's averaged class probabilities or values, a gradient-boosting model's
raw predictions (pred_margin: no sigmoid or softmax). Everything after that — the argmax
or sign test that picks a class, the inverse link of a HistGradientBoosting regressor —
is done here with the same numpy calls scikit-learn makes, so equal raw scores give
equal answers. Only exact scikit-learn classes qualify (a subclass may predict
differently); a Pipeline does not.

Rows that are not all finite are left to scikit-learn (`predict` answers None), except
NaN for HistGradientBoosting, whose compiled form takes missing values as it does:
scikit-learn rejects or routes them per estimator, and the framework stays the judge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from modelhost.frameworks.compiled_predictor import CompiledPredictor

FOREST = (
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
)
SINGLE = (
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeClassifier",
    "ExtraTreeRegressor",
)
BOOSTED = ("GradientBoostingClassifier", "GradientBoostingRegressor")
HIST = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
_KINDS = {
    name: kind
    for kind, names in (
        ("forest", FOREST),
        ("single", SINGLE),
        ("boosted", BOOSTED),
        ("hist", HIST),
    )
    for name in names
}


def tree_kind(model: Any) -> str | None:
    """The kind ("forest", "single", "boosted", "hist") of a scikit-learn tree estimator
    the compiled tier may take (exact classes only), else None."""
    cls = type(model)
    if not cls.__module__.startswith("sklearn."):
        return None
    return _KINDS.get(cls.__name__)


def is_classifier(model: Any) -> bool:
    return type(model).__name__.endswith("Classifier")


def casts_float32(model: Any) -> bool:
    """scikit-learn's trees compare float32 copies of the input; HistGradientBoosting
    compares float64 values."""
    return tree_kind(model) != "hist"


def raw_scores(model: Any, rows: NDArray[Any]) -> NDArray[Any]:
    """What the compiled library must answer (n × outputs, float64) for `rows`."""
    kind = tree_kind(model)
    if kind == "hist":
        out = model._raw_predict(rows)  # the regressor's has no public name
    elif kind == "boosted" and is_classifier(model):
        out = model.decision_function(rows)
    elif is_classifier(model):
        out = model.predict_proba(rows)
    else:
        out = model.predict(rows)  # forests, single trees and GB regressors: raw = answer
    out = np.asarray(out, dtype=np.float64)
    return out.reshape(out.shape[0], -1)


def finisher(model: Any) -> Callable[[NDArray[Any]], NDArray[Any]]:
    """raw scores (as `CompiledPredictor.predict` shapes them) → `model.predict`'s answer,
    by the same operations scikit-learn applies (see each estimator's predict)."""
    kind = tree_kind(model)
    if not is_classifier(model):
        if kind == "hist":
            inverse = model._loss.link.inverse
            return lambda raw: inverse(raw.ravel())
        return lambda raw: raw
    classes = model.classes_
    if kind in ("forest", "single"):
        return lambda p: classes.take(np.argmax(p.reshape(p.shape[0], -1), axis=1), axis=0)
    # GradientBoosting says class 1 at a raw score of 0, HistGradientBoosting class 0.
    binary: Callable[[NDArray[Any]], NDArray[Any]] = (
        (lambda raw: raw >= 0) if kind == "boosted" else (lambda raw: raw > 0)
    )

    def finish(raw: NDArray[Any]) -> NDArray[Any]:
        if raw.ndim == 1:
            return classes[binary(raw).astype(int)]
        return classes[np.argmax(raw, axis=1)]

    return finish


def same_answers(mine: Any, theirs: Any) -> bool:
    """Same shape, dtype and values (NaN equal to NaN for floats): no tolerance."""
    a, b = np.asarray(mine), np.asarray(theirs)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


class SklearnCompiled:
    """A scikit-learn tree estimator's compiled form, answering as `model.predict` does.

    Wraps the library's `CompiledPredictor` (raw scores) with the input cast scikit-learn
    makes and the step from raw scores to its answer. `predict` answers None for a call
    the compiled form does not take (then the runtime asks scikit-learn).
    """

    def __init__(self, scores: CompiledPredictor, model: Any) -> None:
        self._scores = scores
        self._cast32 = casts_float32(model)
        self._finish = finisher(model)
        self._nan_ok = tree_kind(model) == "hist"
        self.max_rows = scores.max_rows
        self.check_rows = scores.check_rows

    def predict(self, data: Any) -> NDArray[Any] | None:
        if type(data) is not np.ndarray or data.dtype != np.float64 or data.ndim != 2:
            return None
        if self._cast32:
            with np.errstate(over="ignore"):  # too large for float32: scikit-learn says so
                rows32 = data.astype(np.float32)
            if not np.isfinite(rows32).all():
                return None
            data = rows32.astype(np.float64)
        elif np.isinf(data).any() or (not self._nan_ok and np.isnan(data).any()):
            return None
        else:
            data = np.ascontiguousarray(data)
        raw = self._scores.predict(data)
        return None if raw is None else self._finish(raw)

    def matches(self, framework_predict: Callable[[NDArray[Any]], Any]) -> bool:
        """True when scikit-learn answers the check rows (one, then all) as this does."""
        rows = np.ascontiguousarray(self.check_rows[: self.max_rows], dtype=np.float64)
        for batch in (rows[:1], rows):
            mine = self.predict(batch)
            if mine is None or not same_answers(mine, framework_predict(batch)):
                return False
        return True
