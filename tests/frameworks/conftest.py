"""Small models trained on synthetic data, written the way users ship them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.frameworks.fw_support import make_data


@pytest.fixture(scope="session")
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_data()


@pytest.fixture(scope="session")
def booster(data: tuple[np.ndarray, np.ndarray]) -> Any:
    import xgboost as xgb

    X, y = data
    params = {"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": 0}
    return xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=8)


@pytest.fixture()
def xgb_dir(tmp_path: Path, booster: Any) -> Path:
    """`xgboost-model` as SageMaker's XGBoost estimator writes it (UBJSON, no extension)."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    return model_dir


@pytest.fixture(scope="session")
def estimator(data: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.linear_model import LogisticRegression

    X, y = data
    return LogisticRegression().fit(X.astype(np.float64), y)


@pytest.fixture()
def sklearn_dir(tmp_path: Path, estimator: Any) -> Path:
    import joblib

    model_dir = tmp_path / "sklearn-model"
    model_dir.mkdir()
    joblib.dump(estimator, model_dir / "model.joblib")
    return model_dir


@pytest.fixture(autouse=True)
def _restore_import_state() -> Iterator[None]:
    """Script mode edits sys.path and sys.modules; keep tests independent."""
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if not name.startswith(("xgboost", "sklearn", "joblib", "scipy", "numpy")):
            del sys.modules[name]
