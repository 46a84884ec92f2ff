"""The analyzer's baseline and monitoring runs over the churn data, without processes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelhost.monitor import drift
from modelhost.monitor.analyzer import (
    analyze,
    capture_lines,
    file_in_window,
    metrics,
    suggest_baseline,
)
from modelhost.monitor.dataset import DatasetError, read
from modelhost.testing.churn import make_churn
from tests.monitor.support import MONITOR_COLUMNS, capture_line, table_rows

CSV_HEADER = {"csv": {"header": True, "output_columns_position": "START"}}


@pytest.fixture(scope="module")
def baseline() -> tuple[dict, dict]:
    text = ",".join(MONITOR_COLUMNS) + "\n" + "\n".join(table_rows(make_churn(3000, seed=1)))
    return suggest_baseline([text], CSV_HEADER)


def by_name(doc: dict) -> dict[str, dict]:
    return {f["name"]: f for f in doc["features"]}


def test_baseline_infers_types_statistics_and_constraints(baseline: tuple[dict, dict]) -> None:
    stats, constraints = baseline
    features = by_name(stats)
    assert stats["dataset"]["item_count"] == 3000
    assert list(features) == list(MONITOR_COLUMNS)
    assert features["State"]["inferred_type"] == "String"
    assert features["State"]["string_statistics"]["distinct_count"] == 51
    assert features["Account Length"]["inferred_type"] == "Integral"
    day = features["Day Mins"]
    assert day["inferred_type"] == "Fractional"
    num = day["numerical_statistics"]
    assert num["common"] == {"num_present": 3000, "num_missing": 0}
    assert num["min"] <= num["mean"] <= num["max"]
    assert sum(b["count"] for b in num["distribution"]["kll"]["buckets"]) == 3000
    assert len(num["distribution"]["kll"]["sketch"]["data"][0]) == 2048
    rules = by_name(constraints)
    assert len(rules["State"]["string_constraints"]["domains"]) == 51
    assert rules["Day Mins"]["num_constraints"] == {"is_non_negative": True}
    assert rules["Day Mins"]["completeness"] == 1.0
    config = constraints["monitoring_config"]["distribution_constraints"]
    assert config["comparison_threshold"] == 0.1


def test_undrifted_traffic_has_no_violation(baseline: tuple[dict, dict]) -> None:
    lines = [capture_line(r) for r in table_rows(make_churn(600, seed=7))]
    result = analyze(lines, *baseline)
    assert result.records == 600
    assert result.violations == []
    assert all(d.get("ks", d.get("linf")) < 0.1 for d in result.drift.values())


def test_a_shifted_feature_and_a_new_category_are_reported_exactly(
    baseline: tuple[dict, dict],
) -> None:
    rows = table_rows(make_churn(600, seed=8), shift={"Day Mins": 80.0}, new_state_every=20)
    result = analyze([capture_line(r) for r in rows], *baseline)
    found = {(v["feature_name"], v["constraint_check_type"]) for v in result.violations}
    assert found == {("Day Mins", "baseline_drift_check"), ("State", "categorical_values_check")}
    assert "ZZ" in next(v for v in result.violations if v["feature_name"] == "State")["description"]
    assert result.drift["Day Mins"]["psi"] > 0.25
    names = dict(metrics(result))
    assert names["feature_baseline_drift_Day Mins"] > 0.1
    assert names["constraint_violations"] == 2.0


def test_missing_extra_type_and_completeness_checks(baseline: tuple[dict, dict]) -> None:
    rows = table_rows(make_churn(200, seed=9))
    broken = []
    for i, row in enumerate(rows):
        values = row.split(",")
        values[4] = "n/a" if i % 2 else values[4]  # Account Length: not Integral
        values[5] = "" if i % 3 == 0 else values[5]  # VMail Message: missing values
        broken.append(",".join([*values, "extra"]))
    result = analyze([capture_line(r) for r in broken], *baseline)
    found = {(v["feature_name"], v["constraint_check_type"]) for v in result.violations}
    assert ("Account Length", "data_type_check") in found
    assert ("VMail Message", "completeness_check") in found
    assert ("_c15", "extra_column_check") in found
    short = [capture_line(",".join(r.split(",")[:-1])) for r in rows]
    result = analyze(short, *baseline)
    assert ("CustServ Calls", "missing_column_check") in {
        (v["feature_name"], v["constraint_check_type"]) for v in result.violations
    }


def test_window_and_formats() -> None:
    lines = [capture_line("1", "2026-12-06T11:59:59Z"), capture_line("2", "2026-12-06T12:00:00Z")]
    start = 1796558400.0  # 2026-12-06T12:00:00Z
    assert len(capture_lines(["\n".join(lines)], start, start + 3600)) == 1
    data = read(['{"a": 1, "b": "x"}\n{"a": 2}\n'], {"json": {"lines": True}})
    assert data.columns == {"a": [1, 2], "b": ["x", None]}
    data = read(["1,2\n3,4\n"], {"csv": {"header": False}})
    assert list(data.columns) == ["_c0", "_c1"] and data.rows == 2
    with pytest.raises(DatasetError):
        suggest_baseline([""], CSV_HEADER)


def test_distances_are_the_well_known_ones() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 2000), rng.normal(0, 1, 2000)
    same = drift.numeric_distances(a, b)
    moved = drift.numeric_distances(a, b + 1.0)
    assert same["ks"] < 0.06 < 0.3 < moved["ks"]
    assert same["psi"] < 0.05 and moved["psi"] > 0.25
    cat = drift.categorical_distances({"x": 50, "y": 50}, {"x": 90, "y": 10})
    assert cat["linf"] == pytest.approx(0.4)
    assert 0 < cat["js"] < 1 and cat["chi_square_pvalue"] < 0.01


def test_captured_outputs_fill_the_baselines_first_column() -> None:
    """Baseline: the label first, then the features; a capture with inputs only one column
    short gets the model's answers in front (output_columns_position START), also when one
    request carried several rows and the answers came on one line."""
    text = "label,a,b\n" + "\n".join(f"{i % 2},{i},{i * 2}" for i in range(200))
    stats, constraints = suggest_baseline([text], {"csv": {"header": True}})
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": "1,2\n3,6",
                "encoding": "CSV",
            },
            "endpointOutput": {
                "observedContentType": "text/csv",
                "mode": "OUTPUT",
                "data": "0.25,0.75",
                "encoding": "CSV",
            },
        },
        "eventMetadata": {"eventId": "e", "inferenceTime": "2026-12-06T12:00:00Z"},
        "eventVersion": "0",
    }
    result = analyze([json.dumps(record)], stats, constraints)
    assert result.records == 2
    found = {(v["feature_name"], v["constraint_check_type"]) for v in result.violations}
    assert ("label", "data_type_check") in found  # probabilities where labels were
    assert not any(v["constraint_check_type"] == "extra_column_check" for v in result.violations)


def test_runs_read_only_the_capture_hours_of_their_window() -> None:
    start = 1796558400.0  # 2026-12-06T12:00:00Z
    base = "s3://b/capture/ep/AllTraffic/2026/12/06"
    assert file_in_window(f"{base}/12/00-01-002-x.jsonl", start, start + 3600)
    assert file_in_window(f"{base}/11/59-59-999-x.jsonl", start - 1, start + 3600)
    assert not file_in_window(f"{base}/11/00-00-000-x.jsonl", start, start + 3600)
    assert not file_in_window(f"{base}/13/00-00-000-x.jsonl", start, start + 3600)
    assert file_in_window("/somewhere/else.jsonl", start, start + 3600)
