"""The LightGBM runtime: loading, predictions equal to in-process, errors."""

from __future__ import annotations

import io
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
import lightgbm.sklearn  # imported now: the conftest drops late imports
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
from modelhost.frameworks.lightgbm import LightGBMRuntime
from modelhost.frameworks.registry import select_runtime
from tests.frameworks.fw_support import N_FEATURES, csv_body

PARAMS = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}


@pytest.fixture(scope="module")
def lgb_booster(data: tuple[np.ndarray, np.ndarray]) -> lgb.Booster:
    X, y = data
    return lgb.train(PARAMS, lgb.Dataset(X, y), num_boost_round=20)


@pytest.fixture()
def lgb_dir(tmp_path: Path, lgb_booster: lgb.Booster) -> Path:
    """`model.txt` as `booster.save_model` writes it."""
    model_dir = tmp_path / "lgb-model"
    model_dir.mkdir()
    lgb_booster.save_model(str(model_dir / "model.txt"))
    return model_dir


def _loaded(model_dir: Path, **options: Any) -> LightGBMRuntime:
    runtime = LightGBMRuntime(RuntimeOptions(**options))
    runtime.load(model_dir)
    return runtime


def _ctx(model_dir: Path) -> Context:
    return Context(str(model_dir))


def _csv_scores(body: bytes) -> np.ndarray:
    return np.array(body.split(b"\n"), dtype=np.float64)


def test_csv_predictions_equal_in_process(lgb_dir: Path, lgb_booster: Any, data: Any) -> None:
    X, _ = data
    runtime = _loaded(lgb_dir)
    body, media = runtime.handle(csv_body(X[:50]), "text/csv", None, _ctx(lgb_dir))
    assert media == "text/csv"
    expected = lgb_booster.predict(X[:50])
    np.testing.assert_allclose(_csv_scores(body), expected, rtol=0, atol=1e-6)
    one, _ = runtime.handle(csv_body(X[:1]), "text/csv; charset=utf-8", "*/*", _ctx(lgb_dir))
    assert float(one) == pytest.approx(float(expected[0]), abs=1e-6)


def test_every_content_type_and_accept(lgb_dir: Path, lgb_booster: Any, data: Any) -> None:
    X, _ = data
    runtime = _loaded(lgb_dir)
    expected = lgb_booster.predict(X[:3])
    ctx = _ctx(lgb_dir)
    json_bodies = [
        json.dumps({"instances": X[:3].tolist()}),
        json.dumps(X[:3].tolist()),
        json.dumps({"instances": [{"features": row} for row in X[:3].tolist()]}),
    ]
    for doc in json_bodies:
        body, media = runtime.handle(doc.encode(), "application/json", "application/json", ctx)
        assert media == "application/json"
        scores = [p["score"] for p in json.loads(body)["predictions"]]
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)

    one_row = json.dumps({"features": X[0].tolist()}).encode()
    body, _ = runtime.handle(one_row, "application/json", None, ctx)
    assert float(body) == pytest.approx(float(expected[0]), abs=1e-6)

    lines = "\n".join(json.dumps(row) for row in X[:3].tolist()).encode()
    body, media = runtime.handle(lines, "application/jsonlines", "application/jsonlines", ctx)
    assert media == "application/jsonlines"
    scores = [json.loads(line)["score"] for line in body.splitlines()]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)

    buffer = io.BytesIO()
    np.save(buffer, X[:3])
    body, media = runtime.handle(buffer.getvalue(), "application/x-npy", "application/x-npy", ctx)
    assert media == "application/x-npy"
    np.testing.assert_allclose(np.load(io.BytesIO(body)), expected, rtol=0, atol=1e-6)


def test_libsvm_absent_features_are_zero(lgb_dir: Path, lgb_booster: Any) -> None:
    runtime = _loaded(lgb_dir)
    row = np.zeros((1, N_FEATURES))
    row[0, :2] = [0.5, -1]
    expected = float(lgb_booster.predict(row)[0])
    for media in ("text/libsvm", "text/x-libsvm", None):
        body, _ = runtime.handle(b"1:0.5 2:-1", media, None, _ctx(lgb_dir))
        assert float(body) == pytest.approx(expected, abs=1e-6)


def test_missing_content_type_guesses(lgb_dir: Path, data: Any) -> None:
    X, _ = data
    runtime = _loaded(lgb_dir)
    csv_answer, _ = runtime.handle(csv_body(X[:1]), None, None, _ctx(lgb_dir))
    json_answer, _ = runtime.handle(json.dumps(X[0].tolist()).encode(), None, None, _ctx(lgb_dir))
    libsvm = " ".join(f"{i}:{v!r}" for i, v in enumerate(X[0].tolist())).encode()
    libsvm_answer, _ = runtime.handle(libsvm, None, None, _ctx(lgb_dir))
    assert float(csv_answer) == float(json_answer) == pytest.approx(float(libsvm_answer))


def test_csv_empty_field_is_missing(lgb_dir: Path, lgb_booster: Any) -> None:
    runtime = _loaded(lgb_dir)
    body, _ = runtime.handle(b"1,,3,4,5", "text/csv", None, _ctx(lgb_dir))
    expected = lgb_booster.predict(np.array([[1, np.nan, 3, 4, 5]]))[0]
    assert float(body) == pytest.approx(float(expected), abs=1e-6)


def test_feature_count_mismatch(lgb_dir: Path) -> None:
    runtime = _loaded(lgb_dir)
    with pytest.raises(InvalidInput) as info:
        runtime.handle(b"1,2,3", "text/csv", None, _ctx(lgb_dir))
    assert info.value.status_code == 400
    assert info.value.message == (
        f"Feature count mismatch: the model expects {N_FEATURES} features, row 1 has 3"
    )


def test_request_errors(lgb_dir: Path) -> None:
    runtime = _loaded(lgb_dir)
    ctx = _ctx(lgb_dir)
    with pytest.raises(InvalidInput) as empty:
        runtime.handle(b"", "text/csv", None, ctx)
    assert empty.value.status_code == 400
    with pytest.raises(UnsupportedContentType):
        runtime.handle(b"1,2,3,4,5", "image/png", None, ctx)
    with pytest.raises(UnsupportedAccept):
        runtime.handle(b"1,2,3,4,5", "text/csv", "image/png", ctx)
    with pytest.raises(DecodeError):
        runtime.handle(b"1,2,3,4,x", "text/csv", None, ctx)


def test_default_accept_batch_newline_and_threads(lgb_dir: Path) -> None:
    runtime = _loaded(lgb_dir, default_accept="application/json", batch=True, nthread=2)
    _, media = runtime.handle(b"1,2,3,4,5", "text/csv", None, _ctx(lgb_dir))
    assert media == "application/json"
    body, _ = runtime.handle(b"1,2,3,4,5\n1,2,3,4,5", "text/csv", "text/csv", _ctx(lgb_dir))
    assert body.endswith(b"\n") and body.count(b"\n") == 2

    seen: dict[str, Any] = {}
    real = runtime.model.predict

    def spy(data: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(data, **kwargs)

    runtime.model.predict = spy
    # The fast path (lightgbm_fast) passes the same parameter to LightGBM's C API; the
    # library's path, for what the fast path declines, passes it per call.
    assert runtime._fast is not None and runtime._fast._params == b"num_threads=2"
    runtime._fast = None
    runtime.handle(b"1,2,3,4,5", "text/csv", None, _ctx(lgb_dir))
    assert seen == {"num_threads": 2}


def test_multiclass_csv_rows(tmp_path: Path, data: Any) -> None:
    X, _ = data
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)
    params = {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1}
    model = lgb.train(params, lgb.Dataset(X, y), num_boost_round=3)
    model.save_model(str(tmp_path / "model.txt"))
    runtime = _loaded(tmp_path)
    body, _ = runtime.handle(csv_body(X[:2]), "text/csv", None, _ctx(tmp_path))
    rows = [np.array(line.split(b","), dtype=np.float64) for line in body.split(b"\n")]
    np.testing.assert_allclose(rows, model.predict(X[:2]), rtol=0, atol=1e-6)
    body, _ = runtime.handle(csv_body(X[:2]), "text/csv", "application/json", _ctx(tmp_path))
    scores = [p["score"] for p in json.loads(body)["predictions"]]
    np.testing.assert_allclose(scores, model.predict(X[:2]), rtol=0, atol=1e-6)


def test_other_file_names_and_pickles(tmp_path: Path, lgb_booster: Any, data: Any) -> None:
    X, y = data
    expected = lgb_booster.predict(X[:4])
    cases = {
        "a.lgb": lgb_booster.model_to_string().encode(),
        "lightgbm-model": lgb_booster.model_to_string().encode(),
        "booster.pkl": pickle.dumps(lgb_booster),
    }
    for name, payload in cases.items():
        model_dir = tmp_path / name.replace(".", "-")
        model_dir.mkdir()
        (model_dir / name).write_bytes(payload)
        (model_dir / ".hidden").write_bytes(b"junk")
        assert LightGBMRuntime.detect(model_dir), name
        np.testing.assert_allclose(_loaded(model_dir).predict(X[:4]), expected, atol=1e-6)

    wrapped = tmp_path / "wrapped"
    wrapped.mkdir()
    clf = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1, n_jobs=1).fit(X, y)
    joblib.dump(clf, wrapped / "model.joblib")
    # A wrapper is served through its Booster (probabilities), as with XGBoost.
    np.testing.assert_allclose(
        _loaded(wrapped).predict(X[:4]), clf.predict_proba(X[:4])[:, 1], rtol=0, atol=1e-6
    )
    # Auto-detection leaves a pickled wrapper to the sklearn runtime (labels).
    assert not LightGBMRuntime.detect(wrapped)


def test_auto_detection(lgb_dir: Path, xgb_dir: Path, sklearn_dir: Path) -> None:
    assert LightGBMRuntime.detect(lgb_dir)
    assert type(select_runtime("auto", lgb_dir)) is LightGBMRuntime
    assert type(select_runtime("lightgbm", lgb_dir)) is LightGBMRuntime
    assert not LightGBMRuntime.detect(xgb_dir)
    assert not LightGBMRuntime.detect(sklearn_dir)


def test_load_errors_are_actionable(tmp_path: Path, lgb_booster: Any) -> None:
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert info.value.message == (
        f"No model file found in {tmp_path}: expected 'model.txt' (written by "
        "booster.save_model), a *.lgb file, or a pickled Booster for the lightgbm runtime; "
        "files present: notes.md"
    )
    text = lgb_booster.model_to_string().encode()
    (tmp_path / "model.txt").write_bytes(text[: len(text) // 2])
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert "model.txt is truncated: LightGBM's 'end of trees' line is missing" in info.value.message
    (tmp_path / "model.txt").write_bytes(b"{'not': 'a model'}")
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert "model.txt is not a LightGBM text model" in info.value.message
    # Same length, so tree_sizes still fits and the tree check itself must catch it.
    (tmp_path / "model.txt").write_bytes(
        re.sub(rb"\nleaf_value=.", b"\nleaf_value=x", text, count=1)
    )
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert "model.txt is corrupt: tree 0 has a malformed line 'leaf_value=x" in info.value.message
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path / "missing")
    assert "does not exist" in info.value.message


def test_pickle_of_something_else(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"not": "a booster"}))
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert "not a lightgbm Booster" in info.value.message
    joblib.dump(lgb.LGBMRegressor(), tmp_path / "model.pkl")
    with pytest.raises(ModelLoadError) as info:
        _loaded(tmp_path)
    assert "unfitted LGBMRegressor" in info.value.message


FUZZ = """
import random, tempfile
from pathlib import Path
import lightgbm as lgb, numpy as np
from modelhost.errors import ModelLoadError
from modelhost.frameworks.lightgbm import LightGBMRuntime

rng = np.random.default_rng(0)
X = rng.normal(size=(600, 5))
X[:, 3] = rng.integers(0, 12, 600)  # a categorical feature: category lists in the trees
X[::9, 1] = np.nan
y = (X[:, 0] + np.isin(X[:, 3], [2, 5, 7]) > 0.5).astype(int)
base = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0, "cat_smooth": 1}
texts = [
    lgb.train({**base, **extra}, lgb.Dataset(X, y, categorical_feature=[3]), 6)
    .model_to_string()
    .encode()
    for extra in ({"min_data_per_group": 5}, {"linear_tree": True})
]
pick = random.Random(0)
cases = [*texts, *(text[: len(text) * k // 40] for text in texts for k in range(1, 40))]
for n in range(300):
    data = bytearray(texts[n % 2])
    for _ in range(pick.choice([1, 1, 2])):
        i = pick.randrange(len(data) - 40)
        kind = pick.randrange(5)
        if kind == 0:
            data[i : i + 5] = bytes(pick.randrange(32, 127) for _ in range(5))
        elif kind == 1:
            del data[i : i + pick.randrange(1, 40)]
        elif kind == 2:
            data[i] = pick.choice(b"\\n= x\\r")
        elif kind == 3:
            data[i] = pick.choice(b"0123456789")
        else:
            data[i:i] = pick.choice([b" ", b"\\n", b"1", b"-", b"="])
    cases.append(bytes(data))
outcomes = {"rejected": 0, "loaded": 0}
with tempfile.TemporaryDirectory() as tmp:
    for n, case in enumerate(cases):
        print(n, flush=True)  # the last number printed names a case that crashed or hung
        (Path(tmp) / "model.txt").write_bytes(case)
        runtime = LightGBMRuntime()
        try:
            runtime.load(Path(tmp))
        except ModelLoadError as exc:
            if n < len(texts):
                raise SystemExit(f"an intact model was rejected: {exc}") from None
            outcomes["rejected"] += 1
            continue
        outcomes["loaded"] += 1
        runtime.predict(rng.normal(size=(20, 5)))  # loaded: predicting must not crash either
print(outcomes)
"""


def test_corrupt_model_text_never_crashes_the_process() -> None:
    """LightGBM aborts the process on many format errors; the runtime must refuse them first.

    Runs in a child process so a miss shows up as a failed test, not a dead test run.
    """
    try:
        out = subprocess.run(
            [sys.executable, "-c", FUZZ], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stdout or b"").decode().strip().splitlines()[-1:]
        raise AssertionError(f"child hung after case {tail}") from None
    tail = out.stdout.strip().splitlines()[-3:]
    assert out.returncode == 0, f"child died ({out.returncode}) after case {tail}: {out.stderr}"
    assert "'rejected'" in tail[-1]
