"""Feature-attribution drift (monitor/attribution.py): TreeSHAP attributions from XGBoost and
LightGBM, Clarify's nDCG, violations, analysis.json and the CloudWatch series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelhost.errors import DatasetError
from modelhost.monitor import attribution

HEADERS = ["strong", "medium", "weak", "noise"]


def _data(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = 3.0 * x[:, 0] + 1.5 * x[:, 1] + 0.5 * x[:, 2]
    return x, y


def _xgboost(classes: int = 0) -> object:
    import xgboost

    x, y = _data()
    params: dict[str, object] = {"max_depth": 4, "eta": 0.3, "seed": 0, "nthread": 1}
    if classes:
        y = np.digitize(y, np.quantile(y, np.linspace(0, 1, classes + 1)[1:-1]))
        params.update(objective="multi:softprob", num_class=classes)
    return xgboost.train(params, xgboost.DMatrix(x, label=y), num_boost_round=30)


def _shifted(x: np.ndarray) -> np.ndarray:
    """The strongest feature stuck at its mean and the noise feature spread wide: the live
    traffic's order of importance is no longer the baseline's."""
    live = x.copy()
    live[:, 0] = 0.0
    live[:, 1] = 0.0
    return live


def test_ndcg_matches_clarify_definition_by_hand() -> None:
    baseline = {"a": 3.0, "b": 2.0, "c": 1.0}
    reversed_ = {"a": 1.0, "b": 2.0, "c": 3.0}
    dcg = 1 / math.log2(2) + 2 / math.log2(3) + 3 / math.log2(4)
    ideal = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert attribution.ndcg(baseline, reversed_) == pytest.approx(dcg / ideal)
    assert attribution.ndcg(baseline, baseline) == pytest.approx(1.0)
    # Only the order matters, not the scale of the live values.
    assert attribution.ndcg(baseline, {"a": 30.0, "b": 0.2, "c": 0.1}) == pytest.approx(1.0)


def test_ndcg_degenerate_cases() -> None:
    assert attribution.ndcg({"a": 1.0}, {"a": 0.0}) == 1.0
    assert attribution.ndcg({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 2.0}) == 1.0
    # A feature absent from the live run counts as attribution 0.
    assert attribution.ndcg({"a": 3.0, "b": 1.0}, {"b": 1.0}) < 1.0


def test_identical_data_scores_one_and_no_violation() -> None:
    model = _xgboost()
    x, _ = _data(500, seed=1)
    base = attribution.explain(model, x, HEADERS)
    live = attribution.explain(model, x.copy(), HEADERS)
    scores = attribution.drift(base, live)
    assert scores == {"label0": pytest.approx(1.0)}
    assert attribution.violations(scores) == []
    ranked = sorted(base["label0"].features, key=base["label0"].features.__getitem__)
    assert ranked[::-1][:3] == ["strong", "medium", "weak"]


def test_shifted_important_feature_lowers_ndcg_and_violates() -> None:
    model = _xgboost()
    x, _ = _data(500, seed=1)
    base = attribution.explain(model, x, HEADERS)
    live = attribution.explain(model, _shifted(x), HEADERS)
    assert live["label0"].features["strong"] < base["label0"].features["strong"] / 5
    scores = attribution.drift(base, live)
    assert scores["label0"] < attribution.DEFAULT_THRESHOLD
    found = attribution.violations(scores)
    assert [(v["label"], v["metric_name"], v["constraint_check_type"]) for v in found] == [
        ("label0", "shap", "feature_attribution_drift_check")
    ]
    # A threshold below the score reports nothing.
    assert attribution.violations(scores, threshold=scores["label0"] / 2) == []


def test_undrifted_sample_of_same_distribution_stays_above_threshold() -> None:
    model = _xgboost()
    base = attribution.explain(model, _data(1000, seed=1)[0], HEADERS)
    live = attribution.explain(model, _data(200, seed=2)[0], HEADERS)
    assert attribution.drift(base, live)["label0"] >= attribution.DEFAULT_THRESHOLD


def test_contributions_sum_to_the_margin() -> None:
    import xgboost

    model = _xgboost()
    x, _ = _data(50, seed=3)
    (contribs,) = attribution.contributions(model, x)
    assert contribs.shape == (50, 5)
    margin = model.predict(xgboost.DMatrix(x), output_margin=True)
    np.testing.assert_allclose(contribs.sum(axis=1), margin, rtol=1e-4, atol=1e-4)


def test_multiclass_xgboost_has_one_label_per_class() -> None:
    model = _xgboost(classes=3)
    x, _ = _data(200, seed=1)
    explained = attribution.explain(model, x, HEADERS, label_headers=["low", "mid", "high"])
    assert list(explained) == ["low", "mid", "high"]
    assert attribution.label_names(2) == ["label0", "label1"]


def test_lightgbm_and_sklearn_wrappers() -> None:
    lightgbm = pytest.importorskip("lightgbm")
    x, y = _data(1000)
    reg = lightgbm.LGBMRegressor(n_estimators=30, verbose=-1, random_state=0)
    reg.fit(x, y)
    base = attribution.explain(reg, x, HEADERS)
    assert max(base["label0"].features, key=base["label0"].features.__getitem__) == "strong"
    assert attribution.drift(base, attribution.explain(reg, x, HEADERS)) == {
        "label0": pytest.approx(1.0)
    }
    assert attribution.drift(base, attribution.explain(reg, _shifted(x), HEADERS))["label0"] < 0.9
    booster = lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1},
        lightgbm.Dataset(x, label=np.digitize(y, [-1.0, 1.0])),
        num_boost_round=10,
    )
    assert len(attribution.contributions(booster, x[:20])) == 3


def test_aggregations_and_errors() -> None:
    contribs = np.array([[1.0, -2.0, 0.5], [-3.0, 2.0, 0.5]])
    assert attribution.global_attributions(contribs, ["a", "b"]).features == {"a": 2.0, "b": 2.0}
    assert attribution.global_attributions(contribs, ["a", "b"], "mean_sq").features == {
        "a": 5.0,
        "b": 4.0,
    }
    assert attribution.global_attributions(contribs, ["a", "b"], "median").features == {
        "a": -1.0,
        "b": 0.0,
    }
    assert attribution.global_attributions(contribs, ["a", "b"]).expected_value == 0.5
    with pytest.raises(DatasetError, match="agg_method"):
        attribution.global_attributions(contribs, ["a", "b"], "max")
    with pytest.raises(DatasetError, match="headers"):
        attribution.global_attributions(contribs, ["a"])
    with pytest.raises(DatasetError, match="XGBoost or LightGBM"):
        attribution.contributions(object(), contribs)
    with pytest.raises(DatasetError, match="non-empty"):
        attribution.contributions(_xgboost(), np.zeros((0, 4)))


def test_analysis_round_trip_and_metrics() -> None:
    model = _xgboost()
    explained = attribution.explain(model, _data(300)[0], HEADERS)
    doc = attribution.analysis(explained)
    assert set(doc["explanations"]["kernel_shap"]["label0"]) == {
        "global_shap_values",
        "expected_value",
    }
    assert attribution.read_analysis(doc) == explained
    with pytest.raises(DatasetError, match="global_shap_values"):
        attribution.read_analysis({"explanations": {}})
    series = attribution.metrics(explained, {"label0": 0.95})
    names = [name for name, _, _ in series]
    assert names == [*(f"feature_{h}" for h in HEADERS), "ExpectedValue", "ndcg"]
    dims = {name: d for name, d, _ in series}
    assert dims["feature_strong"] == {
        "ExplainabilityMethod": "KernelShap",
        "Label": "label0",
        "ValueType": "GlobalShapValues",
    }
    assert dims["ExpectedValue"]["ValueType"] == "ExpectedValue"
    assert series[-1][2] == 0.95
