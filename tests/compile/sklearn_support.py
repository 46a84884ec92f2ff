"""scikit-learn tree estimators fitted on the churn data, as model directories the sklearn
runtime loads (shared by the compiled-tier tests and the sklearn e2e test)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from numpy.typing import NDArray

from modelhost.testing.churn import ChurnData, make_churn


def _estimators() -> dict[str, Callable[[], Any]]:
    from sklearn import ensemble, tree

    small = {"n_estimators": 20, "max_depth": 6, "random_state": 0}
    return {
        "rf-classifier": lambda: ensemble.RandomForestClassifier(**small),
        "rf-regressor": lambda: ensemble.RandomForestRegressor(**small),
        "et-classifier": lambda: ensemble.ExtraTreesClassifier(**small),
        "et-regressor": lambda: ensemble.ExtraTreesRegressor(**small),
        "gb-classifier": lambda: ensemble.GradientBoostingClassifier(**small),
        "gb-multiclass": lambda: ensemble.GradientBoostingClassifier(**small),
        "gb-regressor": lambda: ensemble.GradientBoostingRegressor(**small),
        "hgb-classifier": lambda: ensemble.HistGradientBoostingClassifier(max_iter=20),
        "hgb-multiclass": lambda: ensemble.HistGradientBoostingClassifier(max_iter=20),
        "hgb-poisson": lambda: ensemble.HistGradientBoostingRegressor(max_iter=20, loss="poisson"),
        "tree-classifier": lambda: tree.DecisionTreeClassifier(max_depth=8, random_state=0),
        "tree-regressor": lambda: tree.DecisionTreeRegressor(max_depth=8, random_state=0),
    }


KINDS = (
    "rf-classifier",
    "rf-regressor",
    "et-classifier",
    "et-regressor",
    "gb-classifier",
    "gb-multiclass",
    "gb-regressor",
    "hgb-classifier",
    "hgb-multiclass",
    "hgb-poisson",
    "tree-classifier",
    "tree-regressor",
)


@cache
def churn() -> ChurnData:
    return make_churn(1500, seed=11)


def target(kind: str, data: ChurnData) -> NDArray[Any]:
    """Churn as strings for the forest classifiers (labels of another dtype), three classes
    for the multiclass kinds, a positive number for the regressors."""
    churned = data.y.astype(int)
    if "multiclass" in kind:
        return churned + (data.X[:, 0] > np.median(data.X[:, 0])).astype(int)
    if kind.startswith(("rf-", "et-")) and kind.endswith("classifier"):
        return np.where(churned == 1, "churn", "stay")
    if kind.endswith("classifier"):
        return churned
    return np.abs(np.asarray(data.X[:, 1], dtype=np.float64)) * 0.1 + churned * 5 + 1.0


def fit(kind: str, data: ChurnData | None = None, **params: Any) -> Any:
    data = data or churn()
    estimator = _estimators()[kind]()
    estimator.set_params(**params)
    return estimator.fit(np.asarray(data.X, dtype=np.float64), target(kind, data))


def held_out(data: ChurnData | None = None) -> NDArray[np.float64]:
    """Held-out rows, float64 as the sklearn runtime decodes them."""
    return np.ascontiguousarray((data or make_churn(200, seed=12)).X, dtype=np.float64)


def write_model_dir(estimator: Any, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, folder / "model.joblib")
    return folder
