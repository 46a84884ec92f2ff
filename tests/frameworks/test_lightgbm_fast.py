"""The fast LightGBM predict path answers exactly what `Booster.predict` answers.

Bit-for-bit (`np.array_equal`: max |diff| 0, same dtype and shape), on generated data with
missing values, for binary, regression, multi-class, categorical splits, linear trees and
an early-stopped model (best_iteration), float32 and float64 input, 1 to 2,000 rows, through
both of its paths (one C call per row, and the batch call); and it declines (None) what it
does not take, so the runtime falls back to the library. Pure: no processes.
"""

from __future__ import annotations

import io
import pickle
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.frameworks import lightgbm_fast
from modelhost.frameworks.base import Context
from modelhost.frameworks.lightgbm import LightGBMRuntime
from modelhost.frameworks.lightgbm_fast import FastPredictor
from modelhost.testing.churn import make_churn
from tests.lgb_support import KINDS, N_FEATURES, lgb_data, lgb_train, train_boosters

ROWS = (1, 2, 3, 8, 9, 17, 33, 257, 2000)


@pytest.fixture(scope="module")
def boosters() -> dict[str, Any]:
    return train_boosters()


@pytest.fixture(params=["per-row calls", "batch call"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every row count through each of the two C paths."""
    loop_max = 10**9 if request.param == "per-row calls" else 0
    monkeypatch.setattr(lightgbm_fast, "LOOP_MAX_ROWS", loop_max)
    return str(request.param)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("model", KINDS)
def test_bit_identical_to_booster_predict(
    boosters: dict[str, Any], model: str, dtype: Any, path: str
) -> None:
    booster = boosters[model]
    fast = FastPredictor(booster, num_threads=1)
    X = lgb_data(max(ROWS), seed=2, dtype=dtype)
    for rows in ROWS:
        x = np.ascontiguousarray(X[:rows])
        want = booster.predict(x, num_threads=1)
        got = fast.predict(x)
        assert got is not None, rows
        assert got.dtype == want.dtype and got.shape == want.shape, rows
        assert np.array_equal(got, want), (rows, float(np.max(np.abs(got - want))))
    fast.close()


def test_the_default_path_choice_and_the_early_stopped_iterations(boosters: dict[str, Any]) -> None:
    booster = boosters["early_stopped"]
    fast = FastPredictor(booster, num_threads=1)
    X = lgb_data(40, seed=3)
    for rows in (1, lightgbm_fast.LOOP_MAX_ROWS, lightgbm_fast.LOOP_MAX_ROWS + 1, 40):
        x = np.ascontiguousarray(X[:rows])
        assert np.array_equal(fast.predict(x), booster.predict(x))
    # best_iteration is what both use: every tree would answer differently.
    assert not np.array_equal(fast.predict(X), booster.predict(X, num_iteration=-1))
    # The early-stopped model pickled (as a pickle or an LGBMModel keeps best_iteration).
    again = pickle.loads(pickle.dumps(booster))
    assert np.array_equal(FastPredictor(again, num_threads=1).predict(X), booster.predict(X))


def test_bit_identical_on_the_churn_model_and_repeated_calls() -> None:
    """The benchmark's model, with answers not reused between calls."""
    data = make_churn(3000, seed=5)
    X = np.ascontiguousarray(data.X.astype(np.float64))
    booster = lgb_train({"objective": "binary", "max_depth": 5}, X, data.y, rounds=30)
    fast = FastPredictor(booster, num_threads=1)
    whole = booster.predict(X)
    answers = [fast.predict(X[i : i + 1]) for i in range(200)]
    assert np.array_equal(np.concatenate(answers), whole[:200])  # each its own array
    assert np.array_equal(fast.predict(X), whole)


@pytest.mark.parametrize(
    "data",
    [
        [[0.0] * N_FEATURES],  # a list
        np.zeros((N_FEATURES,)),  # 1-D
        np.zeros((2, N_FEATURES), dtype=np.int64),  # the library converts; we do not
        np.zeros((2, N_FEATURES), dtype=np.float16),
        np.zeros((4, 2 * N_FEATURES))[:, ::2],  # not contiguous
        np.asfortranarray(np.ones((3, N_FEATURES))),  # column-major
        np.zeros((0, N_FEATURES)),  # no rows
        np.zeros((2, N_FEATURES + 1)),  # another feature count: the library's error
    ],
    ids=["list", "1-d", "int64", "float16", "strided", "fortran", "empty", "width"],
)
def test_declines_what_it_does_not_take(boosters: dict[str, Any], data: Any) -> None:
    assert FastPredictor(boosters["binary"], num_threads=1).predict(data) is None


def test_a_dataframe_goes_to_the_library(boosters: dict[str, Any], tmp_path: Path) -> None:
    """pandas frames (categorical columns, names) are the library's: the runtime answers
    them through Booster.predict, the same numbers."""
    pd = pytest.importorskip("pandas")
    booster = boosters["binary"]
    X = lgb_data(4, seed=11)
    assert FastPredictor(booster, num_threads=1).predict(pd.DataFrame(X)) is None
    booster.save_model(str(tmp_path / "model.txt"))
    runtime = LightGBMRuntime()
    runtime.load(tmp_path)
    assert np.array_equal(runtime.predict(pd.DataFrame(X)), booster.predict(X))
    runtime.unload()


def test_read_only_input_is_taken(boosters: dict[str, Any]) -> None:
    booster = boosters["binary"]
    X = lgb_data(3, seed=4)
    X.flags.writeable = False
    assert np.array_equal(FastPredictor(booster, num_threads=1).predict(X), booster.predict(X))


def test_close_frees_the_configs_and_declines_after(boosters: dict[str, Any]) -> None:
    fast = FastPredictor(boosters["multiclass"], num_threads=1)
    assert fast.configs == 0  # made on first use, per dtype
    fast.predict(lgb_data(2, seed=5))
    fast.predict(lgb_data(2, seed=5, dtype=np.float32))
    assert fast.configs == 2
    fast.close()
    assert fast.configs == 0
    assert fast.predict(lgb_data(2, seed=5)) is None
    assert fast.predict(lgb_data(50, seed=5)) is None
    fast.close()  # twice is harmless


def test_a_config_in_use_at_close_is_freed_when_its_call_returns(
    boosters: dict[str, Any],
) -> None:
    fast = FastPredictor(boosters["binary"], num_threads=1)
    slot = fast._checkout(1)  # as if another thread were inside predict
    assert slot is not None and fast.configs == 1
    fast.close()
    assert fast.configs == 1
    fast._checkin(1, slot)
    assert fast.configs == 0


def test_past_max_configs_it_falls_back(boosters: dict[str, Any]) -> None:
    fast = FastPredictor(boosters["binary"], num_threads=1)
    taken = [fast._checkout(1) for _ in range(lightgbm_fast.MAX_CONFIGS)]
    assert None not in taken
    X = lgb_data(2, seed=6)
    assert fast.predict(X) is None  # every config busy: the library answers instead
    fast._checkin(1, taken.pop())
    assert fast.predict(X) is not None
    fast.close()


def test_threads_get_their_own_answers(boosters: dict[str, Any], tmp_path: Path) -> None:
    """Concurrent callers use their own FastConfigs (or the library): never mixed rows."""
    booster = boosters["multiclass"]
    booster.save_model(str(tmp_path / "model.txt"))
    runtime = LightGBMRuntime()
    runtime.load(tmp_path)
    inputs = [lgb_data(rows, seed=10 + rows) for rows in (1, 2, 5, 40)]
    wants = [booster.predict(x) for x in inputs]
    failures: list[str] = []

    def work(i: int) -> None:
        for _ in range(200):
            if not np.array_equal(runtime.predict(inputs[i]), wants[i]):
                failures.append(f"thread {i}")
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures
    assert runtime._fast is not None and 1 <= runtime._fast.configs <= len(inputs)
    runtime.unload()


def test_the_runtime_uses_it_and_falls_back(boosters: dict[str, Any], tmp_path: Path) -> None:
    booster = boosters["binary"]
    booster.save_model(str(tmp_path / "model.txt"))
    runtime = LightGBMRuntime()
    runtime.load(tmp_path)
    fast = runtime._fast
    assert fast is not None
    X = lgb_data(6, seed=7)
    want = booster.predict(X)
    assert np.array_equal(runtime.predict(X), want)
    assert fast.configs == 1
    # A list and a 1-D row are made arrays first; int input goes through the library.
    assert np.array_equal(runtime.predict(X.tolist()), want)
    assert np.array_equal(runtime.predict(np.ascontiguousarray(X[0])), want[:1])
    whole = np.ones((2, N_FEATURES), dtype=np.int64)
    assert np.array_equal(runtime.predict(whole), booster.predict(whole))
    runtime.unload()  # a multi-model eviction: the FastConfigs go with the model
    assert runtime._fast is None and fast.configs == 0


def test_an_early_stopped_pickle_serves_its_best_iteration(
    boosters: dict[str, Any], tmp_path: Path
) -> None:
    booster = boosters["early_stopped"]
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(booster))
    runtime = LightGBMRuntime()
    runtime.load(tmp_path)
    X = lgb_data(5, seed=8)
    assert np.array_equal(runtime.predict(X), booster.predict(X))
    runtime.unload()


def test_without_the_c_api_the_runtime_uses_the_library(
    boosters: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(*args: Any) -> None:
        raise AttributeError("undefined symbol: LGBM_BoosterPredictForMatSingleRowFast")

    monkeypatch.setattr(FastPredictor, "__init__", missing)
    booster = boosters["regression"]
    booster.save_model(str(tmp_path / "model.txt"))
    runtime = LightGBMRuntime()
    runtime.load(tmp_path)
    assert runtime._fast is None
    X = lgb_data(3, seed=9)
    assert np.array_equal(runtime.predict(X), booster.predict(X))


def test_decoded_requests_take_the_fast_path(boosters: dict[str, Any], tmp_path: Path) -> None:
    """What the codecs decode (CSV, JSON, libsvm, npy) is what the fast path takes."""
    booster = boosters["multiclass"]
    booster.save_model(str(tmp_path / "model.txt"))
    runtime = LightGBMRuntime()
    runtime.load(tmp_path)
    calls: list[Any] = []
    real = runtime.model.predict

    def spy(data: Any, **kwargs: Any) -> Any:
        calls.append(data)
        return real(data, **kwargs)

    runtime.model.predict = spy
    npy = io.BytesIO()
    np.save(npy, np.ones((2, N_FEATURES)))
    bodies = {
        "text/csv": b"1,2,3,4,5,6,7,8,9\n1,,3,4,5,6,7,8,0",
        "application/json": b'{"instances": [[1, 2, 3, 4, 5, 6, 7, 8, 9]]}',
        "text/libsvm": b"1:0.5 3:2.5 9:1",
        "application/x-npy": npy.getvalue(),
    }
    context = Context(str(tmp_path))
    for media, body in bodies.items():
        answer, _ = runtime.handle(body, media, "application/x-npy", context)
        assert np.load(io.BytesIO(answer)).shape[-1] == 3, media
    assert calls == []  # Booster.predict never ran
    runtime.unload()
