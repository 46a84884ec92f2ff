"""The model-monitor analyzer: a baseline from a dataset, or a monitoring run over captures.

What SageMaker's `sagemaker-model-monitor-analyzer` image does, as pure functions over
file texts (the processing job in jobs/ reads and writes the files):

- `suggest_baseline(texts, dataset_format)` -> statistics.json, constraints.json;
- `analyze(texts, baseline statistics, constraints, window)` -> statistics.json of the
  captured records inside the time window, constraint_violations.json, and the drift
  distances per feature (modelhost's `drift.json`; also the CloudWatch metrics).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modelhost.monitor import checks, ground_truth, quality
from modelhost.monitor.dataset import Dataset, DatasetError, read
from modelhost.monitor.statistics import statistics, suggest_constraints


@dataclass
class Analysis:
    """One monitoring run's outputs."""

    statistics: dict[str, Any]
    violations: list[dict[str, str]]
    drift: dict[str, dict[str, float]] = field(default_factory=dict)
    records: int = 0


def suggest_baseline(
    texts: Iterable[str], dataset_format: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    data = read(texts, dataset_format)
    if data.rows == 0:
        raise DatasetError("the baseline dataset has no records")
    stats = statistics(data)
    return stats, suggest_constraints(stats)


def _in_window(line: str, start_s: float | None, end_s: float | None) -> bool:
    if start_s is None and end_s is None:
        return True
    try:
        stamp = json.loads(line)["eventMetadata"]["inferenceTime"]
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (ValueError, KeyError, TypeError):
        return False
    return (start_s is None or when >= start_s) and (end_s is None or when < end_s)


_HOUR = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]*$")


def file_in_window(url: str, start_s: float | None, end_s: float | None) -> bool:
    """Whether a capture file's hour folder (`.../yyyy/mm/dd/hh/<file>`) overlaps the
    window, so a run reads its hours only, not the endpoint's whole history. Files outside
    SageMaker's layout are read."""
    found = _HOUR.search(url)
    if found is None:
        return True
    year, month, day, hour = (int(g) for g in found.groups())
    try:
        begin = dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp()
    except ValueError:
        return True
    return (end_s is None or begin < end_s) and (start_s is None or begin + 3600 > start_s)


def capture_lines(texts: Iterable[str], start_s: float | None, end_s: float | None) -> list[str]:
    """The capture records whose inferenceTime lies in [start, end)."""
    return [
        line
        for text in texts
        for line in text.splitlines()
        if line.strip() and _in_window(line, start_s, end_s)
    ]


def read_captures(lines: list[str], names: list[str]) -> Dataset:
    """Captured inputs named by the baseline's features, by position. When the inputs have
    one column fewer than the baseline, the baseline's first column is the model output
    (SageMaker's `output_columns_position` START): the captured output is put there."""
    text = "\n".join(lines)
    data = read([text], {"sagemakerCaptureJson": {}}, names)
    if len(data.columns) == len(names) - 1 and lines and '"endpointOutput"' in lines[0]:
        fmt = {"sagemakerCaptureJson": {"include_output": True}}
        data = read([text], fmt, names)
    return data


def analyze(
    lines: list[str], baseline_stats: dict[str, Any], constraints: dict[str, Any]
) -> Analysis:
    """Statistics and violations of the captured records `lines` against the baseline."""
    names = [f["name"] for f in constraints.get("features") or baseline_stats["features"]]
    if not lines:
        # SageMaker's analyzer fails a run without data rather than report every column
        # missing.
        raise DatasetError("no captured data in the analysis window")
    data = read_captures(lines, names)
    stats = statistics(data)
    violations, drift = checks.evaluate(baseline_stats, constraints, stats, data.columns)
    return Analysis(stats, violations, drift, data.rows)


def metrics(analysis: Analysis) -> list[tuple[str, float]]:
    """SageMaker's data-quality metric names and values of one run (namespace
    `aws/sagemaker/Endpoints/data-metrics`): per feature `feature_baseline_drift_<name>`
    (the distance checked) and `feature_non_null_<name>` (completeness), plus the run's
    violation count."""
    out: list[tuple[str, float]] = []
    for name, found in analysis.drift.items():
        out.append((f"feature_baseline_drift_{name}", found.get("ks", found.get("linf", 0.0))))
    for feature in analysis.statistics["features"]:
        body = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        common = body.get("common", {})
        total = common.get("num_present", 0) + common.get("num_missing", 0)
        if total:
            out.append((f"feature_non_null_{feature['name']}", common["num_present"] / total))
    out.append(("constraint_violations", float(len(analysis.violations))))
    return out


def suggest_quality_baseline(
    texts: Iterable[str], dataset_format: dict[str, Any], env: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Model quality's baseline (`analysis_type` MODEL_QUALITY): the dataset holds the
    predictions and the labels in the columns `inference_attribute`,
    `ground_truth_attribute` and optionally `probability_attribute` (names, or `_cN`
    without a header); `problem_type` picks the metrics."""
    data = read(texts, dataset_format)
    problem = env.get("problem_type", "")

    def column(key: str, required: bool = True) -> list[Any] | None:
        name = env.get(key)
        if not name:
            if required:
                raise DatasetError(f"Environment.{key} is required for MODEL_QUALITY")
            return None
        if name not in data.columns:
            raise DatasetError(f"{key} {name!r} is not a column of the dataset")
        return [v for v in data.columns[name]]

    truth, predicted = column("ground_truth_attribute"), column("inference_attribute")
    prob = column("probability_attribute", required=False)
    assert truth is not None and predicted is not None
    if prob is not None and problem == "BinaryClassification":
        threshold = float(env.get("probability_threshold_attribute") or 0.5)
        predicted = [1 if float(p) > threshold else 0 for p in prob]
    try:
        stats = quality.quality_statistics(
            problem, truth, predicted, None if prob is None else [float(p) for p in prob]
        )
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    return stats, quality.suggest_quality_constraints(stats, problem)


def analyze_quality(
    lines: list[str], truth_lines: list[str], constraints: dict[str, Any], env: dict[str, str]
) -> Analysis:
    """A model-quality run: captured predictions with ground truth, against constraints."""
    problem = env.get("problem_type", "")
    pairs = ground_truth.merge(lines, truth_lines, env)
    try:
        stats = quality.quality_statistics(
            problem, pairs.truth, pairs.predicted, pairs.probability or None
        )
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    violations = quality.quality_violations(stats, constraints, problem)
    return Analysis(stats, violations, {}, len(pairs.truth))


def quality_metrics(analysis: Analysis) -> list[tuple[str, float]]:
    """SageMaker's model-quality metric names (namespace
    `aws/sagemaker/Endpoints/model-metrics`): each metric's value."""
    section = next(v for k, v in analysis.statistics.items() if k.endswith("_metrics"))
    return [
        (name, float(metric["value"]))
        for name, metric in section.items()
        if name != "confusion_matrix" and metric["value"] == metric["value"]
    ]
