"""The XGBoost runtime: loading, predictions equal to in-process, errors."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.errors import (
    DecodeError,
    InvalidInput,
    ModelLoadError,
    UnsupportedAccept,
    UnsupportedContentType,
)
from modelhost.frameworks.base import Context, RuntimeOptions
from modelhost.frameworks.xgboost import XGBoostRuntime
from tests.frameworks.fw_support import N_FEATURES, csv_body


def _loaded(model_dir: Path, **options: Any) -> XGBoostRuntime:
    runtime = XGBoostRuntime(RuntimeOptions(**options))
    runtime.load(model_dir)
    return runtime


def _ctx(model_dir: Path) -> Context:
    return Context(str(model_dir))


def _csv_scores(body: bytes) -> np.ndarray:
    # SageMaker's real-time XGBoost answer: all rows' scores on one line.
    return np.array(body.split(b","), dtype=np.float64)


def test_csv_predictions_equal_in_process(xgb_dir: Path, booster: Any, data: Any) -> None:
    X, _ = data
    runtime = _loaded(xgb_dir)
    body, media = runtime.handle(csv_body(X[:50]), "text/csv", None, _ctx(xgb_dir))
    assert media == "text/csv"
    expected = booster.inplace_predict(X[:50])
    np.testing.assert_allclose(_csv_scores(body), expected, atol=1e-6)
    one, _ = runtime.handle(csv_body(X[:1]), "text/csv; charset=utf-8", "*/*", _ctx(xgb_dir))
    assert float(one) == pytest.approx(float(expected[0]), abs=1e-6)


def test_other_formats(xgb_dir: Path, booster: Any, data: Any) -> None:
    X, _ = data
    runtime = _loaded(xgb_dir)
    expected = booster.inplace_predict(X[:3])
    ctx = _ctx(xgb_dir)

    body, media = runtime.handle(
        json.dumps({"instances": X[:3].tolist()}).encode(),
        "application/json",
        "application/json",
        ctx,
    )
    assert media == "application/json"
    scores = [p["score"] for p in json.loads(body)["predictions"]]
    np.testing.assert_allclose(scores, expected, atol=1e-6)

    lines = "\n".join(json.dumps(row) for row in X[:3].tolist()).encode()
    body, media = runtime.handle(lines, "application/jsonlines", "application/jsonlines", ctx)
    scores = [json.loads(line)["score"] for line in body.splitlines()]
    np.testing.assert_allclose(scores, expected, atol=1e-6)

    buffer = io.BytesIO()
    np.save(buffer, X[:3])
    body, media = runtime.handle(buffer.getvalue(), "application/x-npy", "application/x-npy", ctx)
    assert media == "application/x-npy"
    np.testing.assert_allclose(np.load(io.BytesIO(body)), expected, atol=1e-6)


def test_libsvm_input_pads_missing_features(xgb_dir: Path, booster: Any) -> None:
    runtime = _loaded(xgb_dir)
    body, _ = runtime.handle(b"1:0.5 2:-1", "text/x-libsvm", None, _ctx(xgb_dir))
    row = np.full((1, N_FEATURES), np.nan, dtype=np.float32)
    row[0, :2] = [0.5, -1]
    assert float(body) == pytest.approx(float(booster.inplace_predict(row)[0]), abs=1e-6)


def test_missing_content_type_guesses(xgb_dir: Path, data: Any) -> None:
    X, _ = data
    runtime = _loaded(xgb_dir)
    csv_answer, _ = runtime.handle(csv_body(X[:1]), None, None, _ctx(xgb_dir))
    libsvm = " ".join(f"{i}:{v!r}" for i, v in enumerate(X[0].tolist())).encode()
    libsvm_answer, _ = runtime.handle(libsvm, None, None, _ctx(xgb_dir))
    assert float(csv_answer) == pytest.approx(float(libsvm_answer), abs=1e-6)


def test_feature_count_mismatch(xgb_dir: Path) -> None:
    runtime = _loaded(xgb_dir)
    with pytest.raises(InvalidInput) as info:
        runtime.handle(b"1,2,3", "text/csv", None, _ctx(xgb_dir))
    assert info.value.status_code == 400
    assert info.value.message == (
        f"Feature count mismatch: the model expects {N_FEATURES} features, row 1 has 3"
    )


def test_request_errors(xgb_dir: Path) -> None:
    runtime = _loaded(xgb_dir)
    ctx = _ctx(xgb_dir)
    with pytest.raises(InvalidInput) as empty:
        runtime.handle(b"", "text/csv", None, ctx)
    assert empty.value.status_code == 400
    with pytest.raises(UnsupportedContentType):
        runtime.handle(b"1,2,3,4,5", "image/png", None, ctx)
    with pytest.raises(UnsupportedAccept):
        runtime.handle(b"1,2,3,4,5", "text/csv", "image/png", ctx)
    with pytest.raises(DecodeError):
        runtime.handle(b"1,2,3,4,x", "text/csv", None, ctx)


def test_default_accept_and_batch_newline(xgb_dir: Path) -> None:
    runtime = _loaded(xgb_dir, default_accept="application/json", batch=True)
    body, media = runtime.handle(b"1,2,3,4,5", "text/csv", None, _ctx(xgb_dir))
    assert media == "application/json"
    body, media = runtime.handle(b"1,2,3,4,5\n1,2,3,4,5", "text/csv", "text/csv", _ctx(xgb_dir))
    assert body.endswith(b"\n") and body.count(b"\n") == 2


def test_pickled_booster_and_sklearn_wrapper(tmp_path: Path, booster: Any, data: Any) -> None:
    import xgboost as xgb

    X, y = data
    (tmp_path / "xgboost-model").write_bytes(pickle.dumps(booster))
    runtime = _loaded(tmp_path)
    np.testing.assert_allclose(runtime.predict(X[:4]), booster.inplace_predict(X[:4]), atol=1e-6)

    wrapped = tmp_path / "wrapped"
    wrapped.mkdir()
    clf = xgb.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(X, y)
    (wrapped / "model.pkl").write_bytes(pickle.dumps(clf))
    runtime = _loaded(wrapped)
    np.testing.assert_allclose(runtime.predict(X[:4]), clf.predict_proba(X[:4])[:, 1], atol=1e-6)


def test_json_model_file_and_hidden_files(tmp_path: Path, booster: Any, data: Any) -> None:
    X, _ = data
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    booster.save_model(str(tmp_path / "model.json"))
    runtime = _loaded(tmp_path)
    np.testing.assert_allclose(runtime.predict(X[:4]), booster.inplace_predict(X[:4]), atol=1e-6)


def test_nthread_follows_options(xgb_dir: Path) -> None:
    runtime = _loaded(xgb_dir, nthread=2)
    config = json.loads(runtime.model.save_config())
    assert config["learner"]["generic_param"]["nthread"] == "2"


def test_multiclass_csv_rows(tmp_path: Path, data: Any) -> None:
    import xgboost as xgb

    X, _ = data
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    params = {"objective": "multi:softprob", "num_class": 3, "nthread": 1}
    model = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=3)
    (tmp_path / "xgboost-model").write_bytes(bytes(model.save_raw("ubj")))
    runtime = _loaded(tmp_path)
    body, _ = runtime.handle(csv_body(X[:2]), "text/csv", None, _ctx(tmp_path))
    # As SageMaker's container writes it: each row's list text, comma-joined.
    rows = json.loads(b"[" + body + b"]")
    np.testing.assert_allclose(rows, model.inplace_predict(X[:2]), atol=1e-6)


def test_load_errors_are_actionable(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.txt").write_text("y")
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert info.value.message == (
        f"No model file found in {tmp_path}: expected 'xgboost-model' or a *.json/*.ubj file "
        "for the xgboost runtime; files present: a.txt, b.txt"
    )
    (tmp_path / "xgboost-model").write_bytes(b"definitely not a model")
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert "xgboost-model is not a model xgboost" in info.value.message
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path / "missing")
    assert "does not exist" in info.value.message


def test_pickle_of_something_else(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"not": "a booster"}))
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert "not an xgboost Booster" in info.value.message
