"""The scikit-learn runtime."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.errors import InvalidInput, ModelLoadError
from modelhost.frameworks.base import Context, RuntimeOptions
from modelhost.frameworks.sklearn import SklearnRuntime
from tests.frameworks.fw_support import csv_body


def _loaded(model_dir: Path) -> SklearnRuntime:
    runtime = SklearnRuntime(RuntimeOptions())
    runtime.load(model_dir)
    return runtime


def test_json_default_accept(sklearn_dir: Path, estimator: Any, data: Any) -> None:
    X, _ = data
    runtime = _loaded(sklearn_dir)
    body, media = runtime.handle(
        json.dumps(X[:4].tolist()).encode(), "application/json", None, Context(str(sklearn_dir))
    )
    assert media == "application/json"
    assert json.loads(body) == estimator.predict(X[:4].astype(np.float64)).tolist()


def test_csv_npy_and_one_d(sklearn_dir: Path, estimator: Any, data: Any) -> None:
    X, _ = data
    runtime = _loaded(sklearn_dir)
    ctx = Context(str(sklearn_dir))
    expected = estimator.predict(X[:3].astype(np.float64))
    body, media = runtime.handle(csv_body(X[:3]), "text/csv", "text/csv", ctx)
    assert media == "text/csv"
    assert [int(v) for v in body.split(b"\n")] == expected.tolist()
    buffer = io.BytesIO()
    np.save(buffer, X[0])  # 1-D → one row
    body, _ = runtime.handle(buffer.getvalue(), "application/x-npy", "application/x-npy", ctx)
    assert np.load(io.BytesIO(body)).tolist() == expected[:1].tolist()
    body, _ = runtime.handle(b'{"features": [1, 2, 3, 4, 5]}', None, "application/jsonlines", ctx)
    assert body in (b"0", b"1")


def test_feature_count_mismatch(sklearn_dir: Path) -> None:
    runtime = _loaded(sklearn_dir)
    with pytest.raises(InvalidInput) as info:
        runtime.handle(b"[1, 2]", "application/json", None, Context(str(sklearn_dir)))
    assert info.value.message == "Feature count mismatch: the model expects 5 features, row 1 has 2"


def test_pkl_file(tmp_path: Path, estimator: Any, data: Any) -> None:
    X, _ = data
    (tmp_path / "clf.pkl").write_bytes(pickle.dumps(estimator))
    runtime = _loaded(tmp_path)
    assert runtime.predict(X[:2].astype(np.float64)).tolist() == estimator.predict(X[:2]).tolist()


def test_load_errors(tmp_path: Path, booster: Any) -> None:
    import joblib

    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert "expected 'model.joblib'" in info.value.message
    joblib.dump({"weights": [1, 2]}, tmp_path / "model.joblib")
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert "has no predict method" in info.value.message
    joblib.dump(booster, tmp_path / "model.joblib")
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert "MH_INSTANCE_RUNTIME=xgboost" in info.value.message
