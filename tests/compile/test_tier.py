"""The compiled tier: a served model compiled in a child process, attached only when its
answers are the same bits, by real runtimes loaded from real artifacts."""

from __future__ import annotations

import json
import logging
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from modelhost.compile.tier import compile_for_tier, faster_up_to, same_bits
from modelhost.container.compile_tier import CompileTier, TierConfig, model_digest
from modelhost.container.loading import load_runtime
from modelhost.frameworks.base import Runtime, RuntimeOptions
from modelhost.frameworks.compiled import MARKER
from modelhost.frameworks.compiled_predictor import FAILED, CompiledPredictor
from tests.compile.conftest import Case, data

TREE_KINDS = ("xgb-binary", "xgb-reg", "xgb-multi", "lightgbm")


def _unpack(case: Case, root: Path) -> Path:
    folder = root / f"model-{case.name}"
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(case.artifact) as tar:
        tar.extractall(folder, filter="data")
    return folder


def _runtime(case: Case, root: Path) -> Runtime:
    return load_runtime("auto", _unpack(case, root), RuntimeOptions())


def _wait(condition: object, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- pure decisions -------------------------------------------------------------------


def test_faster_up_to_takes_the_sizes_the_compiled_form_won_from_one_row_up() -> None:
    native = {1: 30.0, 64: 60.0, 512: 200.0, 4096: 900.0}
    assert faster_up_to(native, {1: 3.0, 64: 10.0, 512: 150.0, 4096: 1200.0}) == 512
    assert faster_up_to(native, {1: 3.0, 64: 70.0, 512: 100.0, 4096: 100.0}) == 1
    assert faster_up_to(native, {1: 31.0, 64: 1.0, 512: 1.0, 4096: 1.0}) == 0
    assert faster_up_to(native, {k: v / 2 for k, v in native.items()}) == 4096


def test_same_bits_has_no_tolerance() -> None:
    a = np.array([[0.5, np.nan]], dtype=np.float32)
    assert same_bits(a, a.copy())
    assert not same_bits(a, np.nextafter(a, np.float32(1)))
    assert not same_bits(a, a.reshape(2, 1))
    assert not same_bits(a, np.array([[0.5, 0.0]], dtype=np.float32))


# --- the compiler child's work --------------------------------------------------------


@pytest.mark.parametrize("kind", TREE_KINDS)
def test_compiled_form_answers_the_same_bits_as_the_runtime(
    kind: str, cases: dict[str, Case], tmp_path: Path
) -> None:
    runtime = _runtime(cases[kind], tmp_path)
    assert runtime.model_dir is not None and runtime.tree_framework is not None
    out = tmp_path / "out"
    compile_for_tier(runtime.model_dir, runtime.tree_framework, out, 120.0, max_rows=64)
    marker = json.loads((out / MARKER).read_text())
    assert marker["tier"]["max_rows"] == 64 and marker["tier"]["checked_rows"] > 1000
    predictor = CompiledPredictor.load(out)
    assert predictor is not None
    x, _ = data(seed=5)
    rows = np.ascontiguousarray(x[:50], dtype=runtime.input_dtype)
    expected = runtime.predict(rows)
    assert runtime.attach_compiled(predictor)
    got = predictor.predict(rows)
    assert got is not None and got.dtype == expected.dtype
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.array_equal(runtime.predict(rows), expected, equal_nan=True)
    # Calls it does not take fall through to the framework, with the same answers.
    assert predictor.predict(np.ascontiguousarray(np.tile(rows, (2, 1)))) is None
    assert predictor.predict(rows.astype(np.float16)) is None


def test_measured_max_rows_is_recorded(cases: dict[str, Case], tmp_path: Path) -> None:
    runtime = _runtime(cases["xgb-binary"], tmp_path)
    assert runtime.model_dir is not None
    compile_for_tier(runtime.model_dir, "XGBOOST", tmp_path / "out", 120.0)
    tier = json.loads((tmp_path / "out" / MARKER).read_text())["tier"]
    assert set(tier["native_us"]) == set(tier["compiled_us"]) == {"1", "64", "512", "4096"}
    assert tier["max_rows"] in (0, 1, 64, 512, 4096)


def test_no_c_compiler_leaves_a_reason(
    cases: dict[str, Case], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = _runtime(cases["xgb-reg"], tmp_path)
    assert runtime.model_dir is not None
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    compile_for_tier(runtime.model_dir, "XGBOOST", tmp_path / "out", 60.0, max_rows=8)
    assert not (tmp_path / "out" / MARKER).exists()
    reason = json.loads((tmp_path / "out" / FAILED).read_text())["reason"]
    assert "No C compiler" in reason
    assert CompiledPredictor.load(tmp_path / "out") is None


def test_a_model_of_another_kind_is_refused(tmp_path: Path) -> None:
    import joblib
    from sklearn.linear_model import Ridge

    x, _ = data(seed=3, missing=False)
    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(Ridge().fit(x, x[:, 0]), folder / "model.joblib")
    compile_for_tier(folder, "SKLEARN", tmp_path / "out", 60.0, max_rows=8)
    reason = json.loads((tmp_path / "out" / FAILED).read_text())["reason"]
    assert "scikit-learn tree estimators, not Ridge" in reason


def test_attach_refuses_another_models_compiled_form(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    binary = _runtime(cases["xgb-binary"], tmp_path)
    reg = _runtime(cases["xgb-reg"], tmp_path)
    assert reg.model_dir is not None
    compile_for_tier(reg.model_dir, "XGBOOST", tmp_path / "out", 120.0, max_rows=64)
    predictor = CompiledPredictor.load(tmp_path / "out")
    assert predictor is not None
    assert not binary.attach_compiled(predictor)
    assert binary.compiled is None
    reg.unload()
    assert not reg.attach_compiled(predictor)  # nothing served any more


# --- the instance's tier thread (real child processes) --------------------------------


def test_tier_compiles_once_per_machine_and_attaches_every_copy(
    cases: dict[str, Case], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = TierConfig(enabled=True, cache_dir=tmp_path / "compiled", max_rows=64)
    first, second = CompileTier(config), CompileTier(config)
    a = _runtime(cases["xgb-multi"], tmp_path / "a")
    b = _runtime(cases["xgb-multi"], tmp_path / "b")  # the same model, unpacked elsewhere
    assert a.model_dir is not None and b.model_dir is not None
    assert model_digest(a.model_dir, "XGBOOST") == model_digest(b.model_dir, "XGBOOST")
    x, _ = data(seed=9)
    rows = np.ascontiguousarray(x[:20])
    expected = a.predict(rows)
    with caplog.at_level(logging.INFO, logger="modelhost.container"):
        first.offer(a, "a")
        second.offer(b, "b")
        _wait(lambda: first.attached == 1 and second.attached == 1)
    assert a.compiled is not None and b.compiled is not None
    assert np.array_equal(a.predict(rows), expected) and np.array_equal(b.predict(rows), expected)
    compiles = [r for r in caplog.records if "in the background" in r.getMessage()]
    assert len(compiles) == 1
    assert len(list(config.cache_dir.glob("*/model.so"))) == 1
    first.close()
    second.close()


def test_tier_off_or_unloaded_attaches_nothing(cases: dict[str, Case], tmp_path: Path) -> None:
    off = CompileTier(TierConfig(enabled=False, cache_dir=tmp_path / "c"))
    runtime = _runtime(cases["lightgbm"], tmp_path)
    off.offer(runtime, "m")
    assert not (tmp_path / "c").exists() and runtime.compiled is None
    on = CompileTier(TierConfig(enabled=True, cache_dir=tmp_path / "c", max_rows=8))
    runtime.unload()
    on.offer(runtime, "m")
    on.close()
    _wait(lambda: on._thread is not None and not on._thread.is_alive(), 30.0)
    assert on.attached == 0 and runtime.compiled is None


def test_a_recorded_failure_is_not_compiled_again(
    cases: dict[str, Case], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = TierConfig(enabled=True, cache_dir=tmp_path / "c", max_rows=8)
    runtime = _runtime(cases["xgb-reg"], tmp_path)
    assert runtime.model_dir is not None
    folder = config.cache_dir / model_digest(runtime.model_dir, "XGBOOST")
    folder.mkdir(parents=True)
    (folder / FAILED).write_text(json.dumps({"reason": "the test says no"}))
    (config.cache_dir / f"{folder.name}.complete").touch()  # a complete entry
    tier = CompileTier(config)
    with caplog.at_level(logging.INFO, logger="modelhost.container"):
        tier.offer(runtime, "m")
        _wait(lambda: any("the test says no" in r.getMessage() for r in caplog.records), 30.0)
    assert not any("in the background" in r.getMessage() for r in caplog.records)
    assert runtime.compiled is None and tier.attached == 0
    tier.close()


@pytest.mark.parametrize("kind", ["xgb-binary", "lightgbm"])
def test_merged_rows_answer_as_each_alone_with_the_compiled_form(
    kind: str, cases: dict[str, Case], tmp_path: Path
) -> None:
    """The batcher stacks requests into one predict; with the compiled form attached each
    request's rows must still get what they get alone, and what the framework gives."""
    runtime = _runtime(cases[kind], tmp_path)
    assert runtime.model_dir is not None and runtime.tree_framework is not None
    x, _ = data(seed=13)
    requests = [np.ascontiguousarray(x[i : i + n], dtype=runtime.input_dtype) for i, n in
                ((0, 1), (5, 3), (20, 7), (40, 1))]  # fmt: skip
    framework = [runtime.predict(r) for r in requests]
    compile_for_tier(
        runtime.model_dir, runtime.tree_framework, tmp_path / "out", 120.0, max_rows=16
    )
    predictor = CompiledPredictor.load(tmp_path / "out")
    assert predictor is not None and runtime.attach_compiled(predictor)
    merged = runtime.predict(np.concatenate(requests))
    offsets = np.cumsum([0, *(len(r) for r in requests)])
    for k, request in enumerate(requests):
        alone = runtime.predict(request)
        assert np.array_equal(alone, framework[k], equal_nan=True)
        assert np.array_equal(merged[offsets[k] : offsets[k + 1]], alone, equal_nan=True)
