"""scikit-learn tree estimators in the compiled tier: each kind compiled in the tier's
child, attached to the sklearn runtime only with the same answers, bit for bit; the
kinds that cannot be exact refused with their reason."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.compile.tier import compile_for_tier
from modelhost.container.compile_tier import CompileTier, TierConfig
from modelhost.frameworks.compiled import MARKER
from modelhost.frameworks.compiled_predictor import FAILED, CompiledPredictor
from modelhost.frameworks.sklearn import SklearnRuntime
from modelhost.frameworks.sklearn_trees import same_answers, tree_kind
from tests.compile.sklearn_support import KINDS, fit, held_out, write_model_dir


def _served(estimator: Any, root: Path) -> SklearnRuntime:
    runtime = SklearnRuntime()
    runtime.load(write_model_dir(estimator, root / "model"))
    return runtime


def _compiled(runtime: SklearnRuntime, out: Path, max_rows: int = 64) -> CompiledPredictor:
    assert runtime.model_dir is not None and runtime.tree_framework == "SKLEARN"
    compile_for_tier(runtime.model_dir, "SKLEARN", out, 120.0, max_rows=max_rows)
    assert (out / MARKER).is_file(), (out / FAILED).read_text()
    predictor = CompiledPredictor.load(out)
    assert predictor is not None
    return predictor


def _reason(out: Path) -> str:
    assert not (out / MARKER).exists()
    return str(json.loads((out / FAILED).read_text())["reason"])


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_answers_the_same_bits_through_its_compiled_form(
    kind: str, tmp_path: Path
) -> None:
    estimator = fit(kind)
    runtime = _served(estimator, tmp_path)
    rows = held_out()
    before = [runtime.predict(rows[:1]), runtime.predict(rows[:50])]
    marker_dir = tmp_path / "out"
    assert runtime.attach_compiled(_compiled(runtime, marker_dir))
    assert json.loads((marker_dir / MARKER).read_text())["tier"]["checked_rows"] > 1000
    assert runtime.compiled is not None
    for batch, expected in zip((rows[:1], rows[:50]), before, strict=True):
        answered = runtime.compiled.predict(batch)  # the compiled form takes these calls
        assert answered is not None and same_answers(answered, expected)
        assert same_answers(runtime.predict(batch), expected)
        assert same_answers(runtime.predict(batch), estimator.predict(batch))
    # float64 values between float32 ones: rounded to float32 as scikit-learn rounds them.
    between = rows[:60] * (1 + 1e-9 * np.random.default_rng(1).normal(size=(60, rows.shape[1])))
    assert runtime.compiled.predict(between) is not None
    assert same_answers(runtime.predict(between), estimator.predict(between))
    # Larger calls than it measured fall through to scikit-learn, with the same answers.
    assert runtime.compiled.predict(rows[:100]) is None
    assert same_answers(runtime.predict(rows[:100]), estimator.predict(rows[:100]))


@pytest.mark.parametrize("kind", ["rf-classifier", "hgb-classifier"])
def test_missing_and_huge_values_answer_as_scikit_learn_does(kind: str, tmp_path: Path) -> None:
    """NaN: HistGradientBoosting's compiled form takes it, the others leave it to
    scikit-learn; so is a value float32 cannot hold, for the trees that cast to float32."""
    estimator = fit(kind)
    runtime = _served(estimator, tmp_path)
    rows = held_out()[:20].copy()
    rows[::3, :10] = np.nan
    expected = estimator.predict(rows)
    assert runtime.attach_compiled(_compiled(runtime, tmp_path / "out"))
    assert runtime.compiled is not None
    assert (runtime.compiled.predict(rows) is not None) == (kind == "hgb-classifier")
    assert same_answers(runtime.predict(rows), expected)
    huge = held_out()[:2].copy()
    huge[0, 5] = 1e300
    answered = runtime.compiled.predict(huge)
    if kind == "hgb-classifier":  # it compares float64 values: 1e300 is just large
        assert answered is not None and same_answers(answered, estimator.predict(huge))
    else:
        assert answered is None


def test_a_forest_with_threads_is_refused_with_its_reason(tmp_path: Path) -> None:
    runtime = _served(fit("rf-regressor", n_jobs=2), tmp_path)
    assert runtime.model_dir is not None
    compile_for_tier(runtime.model_dir, "SKLEARN", tmp_path / "out", 60.0, max_rows=8)
    assert "n_jobs=2" in _reason(tmp_path / "out")
    assert CompiledPredictor.load(tmp_path / "out") is None


def test_multi_output_forest_is_refused_with_its_reason(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestRegressor

    x = held_out()
    estimator = RandomForestRegressor(5, max_depth=3, random_state=0).fit(x, x[:, :2])
    runtime = _served(estimator, tmp_path)
    assert runtime.model_dir is not None
    compile_for_tier(runtime.model_dir, "SKLEARN", tmp_path / "out", 60.0, max_rows=8)
    assert "2 outputs" in _reason(tmp_path / "out")


def test_categorical_hist_gradient_boosting_is_refused_with_its_reason(tmp_path: Path) -> None:
    estimator = fit("hgb-classifier", categorical_features=[9])  # Intl Calls: 0 to 14
    runtime = _served(estimator, tmp_path)
    assert runtime.model_dir is not None and runtime.tree_framework == "SKLEARN"
    compile_for_tier(runtime.model_dir, "SKLEARN", tmp_path / "out", 60.0, max_rows=8)
    assert "categorical features" in _reason(tmp_path / "out")


def test_pipelines_and_other_estimators_are_not_offered(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    forest = fit("rf-classifier")
    piped = make_pipeline(StandardScaler(), forest)
    linear = Ridge().fit(held_out(), np.arange(200.0))
    for estimator, name in ((piped, "pipe"), (linear, "linear")):
        assert tree_kind(estimator) is None
        assert _served(estimator, tmp_path / name).tree_framework is None
    assert _served(forest, tmp_path / "forest").tree_framework == "SKLEARN"


def test_attach_refuses_another_estimators_compiled_form(tmp_path: Path) -> None:
    one = _served(fit("gb-regressor"), tmp_path / "one")
    other = _served(fit("gb-regressor", learning_rate=0.2), tmp_path / "other")
    predictor = _compiled(one, tmp_path / "out")
    assert not other.attach_compiled(predictor) and other.compiled is None


@pytest.mark.integration
def test_the_instances_tier_thread_attaches_a_forest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = _served(fit("rf-classifier"), tmp_path)
    rows = held_out()[:30]
    expected = runtime.predict(rows)
    tier = CompileTier(TierConfig(enabled=True, cache_dir=tmp_path / "compiled", max_rows=64))
    with caplog.at_level(logging.INFO, logger="modelhost.container"):
        tier.offer(runtime, "forest")
        deadline = time.monotonic() + 120
        while tier.attached == 0:
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.05)
    assert runtime.compiled is not None and same_answers(runtime.predict(rows), expected)
    tier.close()
