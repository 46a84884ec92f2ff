"""Small LightGBM models of every kind the runtime serves, on generated data, for the
framework, container and gateway tests (a plain module, not fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

N_FEATURES = 9
BASE = {"verbose": -1, "num_threads": 1, "seed": 0, "num_leaves": 15, "min_data_in_leaf": 5}
KINDS = (
    "binary",
    "regression",
    "multiclass",
    "poisson",
    "categorical",
    "linear_tree",
    "early_stopped",
)


def lgb_data(n_rows: int, seed: int, dtype: Any = np.float64) -> np.ndarray:
    """Rows of `N_FEATURES` features with missing values, zeros and a small-integer column."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, N_FEATURES))
    X[:, 8] = rng.integers(0, 6, size=n_rows)  # a small-integer column (categorical model)
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take the default branches
    X[rng.random(X.shape) < 0.05] = 0.0  # zeros: LightGBM's row reader skips them
    return X.astype(dtype)


def lgb_train(
    params: dict[str, Any], X: np.ndarray, y: np.ndarray, rounds: int = 15, **kw: Any
) -> Any:
    """`lgb.train` with `BASE` parameters (one thread, fixed seed, quiet)."""
    return lgb.train({**BASE, **params}, lgb.Dataset(X, y, **kw), num_boost_round=rounds)


def train_boosters() -> dict[str, Any]:
    """One booster of each of `KINDS`: objectives, categorical splits, linear trees and an
    early-stopped model (best_iteration below its iteration count)."""
    X = lgb_data(800, seed=1)
    signal = np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) + 0.3 * np.nan_to_num(X[:, 8])
    binary = (signal > 0).astype(np.int64)
    classes = np.digitize(signal, [-0.5, 0.5])
    train = lgb.Dataset(X[:600], binary[:600])
    early = lgb.train(
        {**BASE, "objective": "binary", "learning_rate": 0.3},
        train,
        num_boost_round=200,
        valid_sets=[lgb.Dataset(X[600:], binary[600:], reference=train)],
        callbacks=[lgb.early_stopping(3, verbose=False)],
        keep_training_booster=True,  # else lgb.train keeps only the best iteration's trees
    )
    assert 0 < early.best_iteration < early.current_iteration()
    return {
        "binary": lgb_train({"objective": "binary"}, X, binary),
        "regression": lgb_train({"objective": "regression"}, X, signal),
        "multiclass": lgb_train({"objective": "multiclass", "num_class": 3}, X, classes),
        "poisson": lgb_train({"objective": "poisson"}, X, np.abs(signal)),
        "categorical": lgb_train({"objective": "binary"}, X, binary, categorical_feature=[8]),
        "linear_tree": lgb_train({"objective": "regression", "linear_tree": True}, X, signal),
        "early_stopped": early,
    }


def write_model_dir(model_dir: Path, booster: Any) -> Path:
    """`model_dir/model.txt` as `booster.save_model` writes it (an early-stopped booster
    keeps its best iteration's trees)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / "model.txt"))
    return model_dir
