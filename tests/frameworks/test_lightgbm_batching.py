"""LightGBM requests merge: one predict on stacked rows answers each request as alone.

The runtime's `batch_rows` says which decoded inputs may be stacked; this checks, for
every kind of model the runtime serves (binary, regression, multiclass, Poisson,
categorical splits, linear trees, an early-stopped model), that the merged call's rows
split back per request are bit-identical (`np.array_equal`, same dtype and shape) to
predicting each request alone, whichever C path each takes (one call per row up to
`LOOP_MAX_ROWS` rows, the batch call above), with float32 requests among float64 ones.
Pure: no processes (the container's batcher is tested in tests/container).
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from modelhost.errors import InvalidInput
from modelhost.frameworks import lightgbm_fast
from modelhost.frameworks.base import RuntimeOptions
from modelhost.frameworks.lightgbm import LightGBMRuntime
from tests.lgb_support import KINDS, N_FEATURES, lgb_data, train_boosters, write_model_dir

# Rows per request; merged totals straddle LOOP_MAX_ROWS (8) and reach 64 (the batcher's
# default max_rows).
GROUPS = ((1, 1, 1), (1, 2, 1, 3, 1), (1, 1, 1, 1, 1, 1, 1, 1, 1), (5, 1, 17, 1, 40))


@pytest.fixture(scope="module")
def boosters() -> dict[str, Any]:
    return train_boosters()


def _runtime(model_dir: Path) -> LightGBMRuntime:
    runtime = LightGBMRuntime()
    runtime.load(model_dir)
    return runtime


def _requests(sizes: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """One array per request; every third one float32, as an NPY body of float32 gives."""
    out = []
    for i, rows in enumerate(sizes):
        X = lgb_data(rows, seed=seed + i)
        out.append(X.astype(np.float32) if i % 3 == 2 else X)
    return out


def _merged(runtime: LightGBMRuntime, requests: list[np.ndarray]) -> list[np.ndarray]:
    """What the batcher does: stack, predict once, slice back per request."""
    assert all(runtime.batch_rows(x) == len(x) for x in requests)
    out = runtime.predict(np.concatenate(requests))
    assert len(out) == sum(len(x) for x in requests)
    bounds = np.cumsum([0, *(len(x) for x in requests)])
    return [out[a:b] for a, b in pairwise(bounds)]


@pytest.mark.parametrize("kind", KINDS)
def test_merged_answers_are_bit_identical_to_each_request_alone(
    boosters: dict[str, Any], kind: str, tmp_path: Path
) -> None:
    booster = boosters[kind]
    runtime = _runtime(write_model_dir(tmp_path / kind, booster))
    try:
        for g, sizes in enumerate(GROUPS):
            requests = _requests(sizes, seed=100 * g)
            for request, got in zip(requests, _merged(runtime, requests), strict=True):
                alone = runtime.predict(request)
                assert got.dtype == alone.dtype and got.shape == alone.shape, sizes
                assert np.array_equal(got, alone), (kind, sizes)
                # And what the library itself answers for this request alone.
                assert np.array_equal(got, booster.predict(request)), (kind, sizes)
    finally:
        runtime.unload()


@pytest.mark.parametrize("loop_max", [0, 10**9], ids=["batch call", "per-row calls"])
def test_merged_answers_on_either_c_path(
    boosters: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loop_max: int
) -> None:
    """Merged and alone forced through the same C path (the test above mixes them)."""
    monkeypatch.setattr(lightgbm_fast, "LOOP_MAX_ROWS", loop_max)
    runtime = _runtime(write_model_dir(tmp_path, boosters["multiclass"]))
    try:
        requests = _requests(GROUPS[3], seed=7)
        for request, got in zip(requests, _merged(runtime, requests), strict=True):
            assert np.array_equal(got, runtime.predict(request))
    finally:
        runtime.unload()


def test_merged_answers_with_the_instances_threads(
    boosters: dict[str, Any], tmp_path: Path
) -> None:
    """With `nthread=2`, batches above `SERIAL_MAX_ROWS` rows score on two OpenMP threads
    and smaller ones on the calling thread: the same numbers either way."""
    booster = boosters["linear_tree"]
    runtime = LightGBMRuntime(RuntimeOptions(nthread=2))
    runtime.load(write_model_dir(tmp_path, booster))
    try:
        for sizes in ((1, 100, 1), (30, 30, 4), (1, 64), (65,)):
            requests = _requests(sizes, seed=sum(sizes))
            for request, got in zip(requests, _merged(runtime, requests), strict=True):
                assert np.array_equal(got, runtime.predict(request)), sizes
                assert np.array_equal(got, booster.predict(request, num_threads=1)), sizes
    finally:
        runtime.unload()


SMALL = (np.float16, np.bool_, np.int8, np.uint8, np.int16, np.uint16)


def test_which_inputs_merge(boosters: dict[str, Any], tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    runtime = _runtime(write_model_dir(tmp_path, boosters["binary"]))
    rows = lgb_data(3, seed=1)
    whole = np.abs(np.nan_to_num(rows * 3))  # unsigned dtypes among them
    try:
        assert runtime.batch_rows(rows) == 3
        assert runtime.batch_rows(rows.astype(np.float32)) == 3
        assert runtime.batch_rows(np.asfortranarray(rows)) == 3  # stacking copies to C order
        for dtype in SMALL:  # every value exact in float32, the library's cast
            assert runtime.batch_rows(whole.astype(dtype)) == 3, dtype
        for other in (
            whole.astype(np.int64),  # the library casts to float32, not exact: see below
            whole.astype(np.int32),
            whole.astype(np.uint32),
            rows[0],  # 1-D
            rows.tolist(),
            pd.DataFrame(rows),
        ):
            assert runtime.batch_rows(other) == 0, type(other)
    finally:
        runtime.unload()


@pytest.mark.parametrize("kind", ["categorical", "multiclass"])
def test_small_dtypes_merged_with_float_rows_answer_as_alone(
    boosters: dict[str, Any], kind: str, tmp_path: Path
) -> None:
    """NPY bodies of bool, small integers or float16 stack with float64/float32 rows."""
    booster = boosters[kind]
    runtime = _runtime(write_model_dir(tmp_path, booster))
    X = np.abs(np.nan_to_num(lgb_data(40, seed=9) * 2))  # unsigned dtypes among them
    requests = [X[:1], X[1:2].astype(np.float32)]
    requests += [X[2 + i : 4 + i].astype(dtype) for i, dtype in enumerate(SMALL)]
    try:
        for request, got in zip(requests, _merged(runtime, requests), strict=True):
            assert np.array_equal(got, runtime.predict(request)), request.dtype
            assert np.array_equal(got, booster.predict(request)), request.dtype
        # Only small ones stacked together: numpy picks the smallest common dtype.
        small = requests[2:]
        for request, got in zip(small, _merged(runtime, small), strict=True):
            assert np.array_equal(got, runtime.predict(request)), request.dtype
    finally:
        runtime.unload()


def test_integer_rows_predict_alone_because_lightgbm_rounds_them_to_float32(
    tmp_path: Path,
) -> None:
    """Why integer arrays never merge: the library scores them as float32, where a value
    above 2**24 loses digits, while stacked with float64 rows it would stay exact."""
    big = 2**24
    x = np.arange(big - 50, big + 50, dtype=np.float64)
    X = np.column_stack([x, np.zeros_like(x)])
    params = {"objective": "regression", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5}
    booster = lgb.train(params, lgb.Dataset(X, (x > big).astype(float)), num_boost_round=5)
    runtime = _runtime(write_model_dir(tmp_path, booster))
    try:
        request = np.array([[big + 1, 0]], dtype=np.int64)
        alone = runtime.predict(request)
        stacked = runtime.predict(np.concatenate([X[:1], request]))[1:]
        assert not np.array_equal(alone, stacked)  # merging would change its answer
        assert runtime.batch_rows(request) == 0  # so it is predicted alone
    finally:
        runtime.unload()


def test_a_wrong_width_fails_in_prepare_before_any_batch(
    boosters: dict[str, Any], tmp_path: Path
) -> None:
    runtime = _runtime(write_model_dir(tmp_path, boosters["binary"]))
    try:
        assert runtime.can_batch
        with pytest.raises(InvalidInput, match=f"expects {N_FEATURES} features, row 1 has 2"):
            runtime.prepare(b"1,2\n", "text/csv", None)
        data, media = runtime.prepare(b",".join([b"1"] * N_FEATURES), "text/csv", None)
        assert (runtime.batch_rows(data), media) == (1, "text/csv")
    finally:
        runtime.unload()
