"""The fast XGBoost predict path answers exactly what `Booster.inplace_predict` answers.

Bit-for-bit, on generated data with missing values, for the objectives whose outputs
differ in shape and transform (binary, multi-class probabilities, regression, ranking,
multi-output) and for batch sizes from one row to thousands; and it declines (None) what
it does not take, so the runtime falls back to the library.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.frameworks.xgboost import XGBoostRuntime
from modelhost.frameworks.xgboost_fast import FastPredictor
from modelhost.testing.churn import make_churn, train_xgboost

ROWS = (1, 2, 3, 7, 32, 33, 257, 2000)


def _data(n_rows: int, n_features: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take the default branches
    return X


def _train(objective: str, X: np.ndarray, y: np.ndarray, **params: Any) -> Any:
    import xgboost as xgb

    params = {"objective": objective, "max_depth": 4, "nthread": 1, "seed": 0, **params}
    return xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=12)


OBJECTIVES = (
    "binary:logistic",
    "binary:logitraw",
    "multi:softprob",
    "multi:softmax",
    "reg:squarederror",
    "count:poisson",
    "multi-output",
)


@pytest.fixture(scope="module")
def boosters() -> dict[str, Any]:
    X = _data(600, 9, seed=1)
    signal = np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1])
    binary = (signal > 0).astype(np.int64)
    classes = np.digitize(signal, [-0.5, 0.5])
    return {
        "binary:logistic": _train("binary:logistic", X, binary),
        "binary:logitraw": _train("binary:logitraw", X, binary),
        "multi:softprob": _train("multi:softprob", X, classes, num_class=3),
        "multi:softmax": _train("multi:softmax", X, classes, num_class=3),
        "reg:squarederror": _train("reg:squarederror", X, signal),
        "count:poisson": _train("count:poisson", X, np.abs(signal)),
        "multi-output": _train(
            "reg:squarederror", X, np.stack([signal, -signal], axis=1), tree_method="hist"
        ),
    }


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_bit_identical_to_inplace_predict(boosters: dict[str, Any], objective: str) -> None:
    booster = boosters[objective]
    fast = FastPredictor(booster)
    X = _data(max(ROWS), booster.num_features(), seed=2)
    for rows in ROWS:
        want = booster.inplace_predict(X[:rows], validate_features=False)
        got = fast.predict(np.ascontiguousarray(X[:rows]))
        assert got is not None
        assert got.dtype == want.dtype and got.shape == want.shape, rows
        assert np.array_equal(got, want, equal_nan=True), rows
    fast.close()


def test_bit_identical_on_the_churn_model_and_repeated_calls() -> None:
    """The model the multi-model benchmark serves, with answers not reused between calls."""
    data = make_churn(3000, seed=5)
    booster = train_xgboost(data, num_round=30, seed=3)
    fast = FastPredictor(booster)
    X = np.ascontiguousarray(data.X.astype(np.float32))
    whole = booster.inplace_predict(X, validate_features=False)
    answers = [fast.predict(X[i : i + 1]) for i in range(200)]
    assert np.array_equal(np.concatenate(answers), whole[:200])  # each its own copy
    got = fast.predict(X)
    assert got is not None and np.array_equal(got, whole)


@pytest.mark.parametrize(
    "data",
    [
        np.zeros((2, 9), dtype=np.float64),  # the library converts; we do not
        np.zeros((9,), dtype=np.float32),  # 1-D
        np.zeros((4, 18), dtype=np.float32)[:, ::2],  # not contiguous
        np.zeros((0, 9), dtype=np.float32),
        [[0.0] * 9],
    ],
    ids=["float64", "1-d", "strided", "empty", "list"],
)
def test_declines_what_it_does_not_take(boosters: dict[str, Any], data: Any) -> None:
    assert FastPredictor(boosters["binary:logistic"]).predict(data) is None


def test_declines_while_another_thread_is_inside_and_after_close(
    boosters: dict[str, Any],
) -> None:
    fast = FastPredictor(boosters["binary:logistic"])
    X = _data(3, 9, seed=4)
    fast._lock.acquire()  # as if another thread were predicting
    try:
        assert fast.predict(X) is None
    finally:
        fast._lock.release()
    assert fast.predict(X) is not None
    fast.close()
    assert fast.predict(X) is None
    fast.close()  # twice is harmless


def test_threads_get_their_own_answers(boosters: dict[str, Any]) -> None:
    """Concurrent callers either take the fast path alone or fall back: never mixed rows."""
    booster = boosters["reg:squarederror"]
    runtime = XGBoostRuntime()
    runtime._xgb = __import__("xgboost")
    runtime._booster, runtime._n_features = booster, booster.num_features()
    runtime._fast = FastPredictor(booster)
    inputs = [_data(5, 9, seed=10 + i) for i in range(4)]
    wants = [booster.inplace_predict(x, validate_features=False) for x in inputs]
    failures: list[str] = []

    def work(i: int) -> None:
        for _ in range(200):
            if not np.array_equal(runtime.predict(inputs[i]), wants[i]):
                failures.append(f"thread {i}")
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures


def test_the_runtime_uses_it_and_falls_back(boosters: dict[str, Any], tmp_path: Path) -> None:
    booster = boosters["binary:logistic"]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    runtime = XGBoostRuntime()
    runtime.load(model_dir)
    assert runtime._fast is not None
    X = _data(6, 9, seed=6)
    want = booster.inplace_predict(X, validate_features=False)
    assert np.array_equal(runtime.predict(X), want)
    # float64 and 1-D input go through the library and answer the same.
    assert np.allclose(runtime.predict(X.astype(np.float64)), want, equal_nan=True)
    assert np.array_equal(runtime.predict(np.ascontiguousarray(X[0])), want[:1])
    runtime.unload()
    assert runtime._fast is None
