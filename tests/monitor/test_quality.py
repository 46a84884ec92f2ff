"""Model-quality metrics, suggested constraints and violations (pure; sklearn's metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelhost.errors import ValidationException
from modelhost.jobs.processing import ProcessingJobs
from modelhost.monitor.ground_truth import merge
from modelhost.monitor.quality import (
    quality_statistics,
    quality_violations,
    suggest_quality_constraints,
)
from modelhost.settings import Settings
from modelhost.store.outputs import Locations
from modelhost.testing.churn import make_churn, train_xgboost

ANALYZER = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"


@pytest.fixture(scope="module")
def churn_scores() -> tuple[np.ndarray, np.ndarray]:
    data = make_churn(2000, seed=0)
    train, test = data.split(0.3, seed=0)
    booster = train_xgboost(train, num_round=30)
    return test.y, np.asarray(booster.inplace_predict(test.X))


def test_binary_metrics_and_a_degraded_model_violates(
    churn_scores: tuple[np.ndarray, np.ndarray],
) -> None:
    y, prob = churn_scores
    labels = (prob > 0.5).astype(int)
    stats = quality_statistics("BinaryClassification", y, labels, prob)
    section = stats["binary_classification_metrics"]
    assert stats["dataset"]["item_count"] == len(y)
    assert 0.8 < section["accuracy"]["value"] <= 1.0
    assert section["auc"]["value"] > 0.8 and section["auc"]["standard_deviation"] > 0
    matrix = section["confusion_matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == len(y)
    constraints = suggest_quality_constraints(stats, "BinaryClassification")
    rules = constraints["binary_classification_constraints"]
    assert rules["accuracy"]["comparison_operator"] == "LessThanThreshold"
    assert rules["false_positive_rate"]["comparison_operator"] == "GreaterThanThreshold"
    assert quality_violations(stats, constraints, "BinaryClassification") == []
    # A model that answers at random: accuracy and auc fall below the baseline.
    noise = np.random.default_rng(1).random(len(y))
    worse = quality_statistics("BinaryClassification", y, (noise > 0.5).astype(int), noise)
    names = {
        v["metric_name"] for v in quality_violations(worse, constraints, "BinaryClassification")
    }
    assert {"accuracy", "auc", "f1"} <= names


def test_regression_and_multiclass() -> None:
    y = np.linspace(0, 10, 200)
    stats = quality_statistics("Regression", y, y + 1.0)
    section = stats["regression_metrics"]
    assert section["mae"]["value"] == pytest.approx(1.0)
    assert section["rmse"]["value"] == pytest.approx(1.0)
    constraints = suggest_quality_constraints(stats, "Regression")
    worse = quality_statistics("Regression", y, y + 3.0)
    names = {v["metric_name"] for v in quality_violations(worse, constraints, "Regression")}
    assert {"mae", "mse", "rmse", "r2"} == names
    multi = quality_statistics(
        "MulticlassClassification", ["a", "b", "c"] * 10, ["a", "b", "b"] * 10
    )
    assert multi["multiclass_classification_metrics"]["accuracy"]["value"] == pytest.approx(2 / 3)
    assert multi["multiclass_classification_metrics"]["confusion_matrix"]["c"]["b"] == 10
    with pytest.raises(ValueError):
        quality_statistics("Ranking", [1], [1])


def test_model_quality_baseline_processing_job(tmp_path: Path) -> None:
    """ModelQualityMonitor.suggest_baseline's job: predictions and labels in a CSV."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"{i % 2},{0.9 if i % 2 else 0.2},{i % 2}" for i in range(100)]
    rows[0] = "0,0.7,1"  # one mistake
    (data / "d.csv").write_text("label,prob,pred\n" + "\n".join(rows) + "\n")
    request = {
        "AppSpecification": {"ImageUri": ANALYZER},
        "Environment": {
            "analysis_type": "MODEL_QUALITY",
            "problem_type": "BinaryClassification",
            "ground_truth_attribute": "label",
            "inference_attribute": "pred",
            "probability_attribute": "prob",
            "probability_threshold_attribute": "0.5",
            "dataset_format": json.dumps({"csv": {"header": True}}),
            "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
            "output_path": "/opt/ml/processing/output",
        },
        "ProcessingInputs": [
            {
                "InputName": "baseline_dataset_input",
                "S3Input": {
                    "S3Uri": str(data),
                    "LocalPath": "/opt/ml/processing/input/baseline_dataset_input",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "o",
                    "S3Output": {
                        "S3Uri": str(tmp_path / "out"),
                        "LocalPath": "/opt/ml/processing/output",
                    },
                }
            ]
        },
    }
    jobs = ProcessingJobs(Settings(home=tmp_path / "home"), None, Locations(None))  # type: ignore[arg-type]
    jobs.check(request)
    message, metrics = jobs.analyze(request)
    assert message.startswith("Completed") and metrics == []
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert stats["binary_classification_metrics"]["accuracy"]["value"] == pytest.approx(0.99)
    constraints = json.loads((tmp_path / "out" / "constraints.json").read_text())
    assert "accuracy" in constraints["binary_classification_constraints"]
    request["Environment"]["baseline_constraints"] = "/opt/ml/processing/output/constraints.json"
    with pytest.raises(ValidationException, match="ground_truth_source is required"):
        jobs.check(request)


def test_ground_truth_merges_by_inference_id() -> None:
    def capture(inference_id: str | None, event_id: str, output: str) -> str:
        meta = {"eventId": event_id, "inferenceTime": "2026-12-06T12:00:00Z"}
        if inference_id:
            meta["inferenceId"] = inference_id
        side = {"observedContentType": "text/csv", "mode": "OUTPUT", "data": output}
        return json.dumps(
            {"captureData": {"endpointOutput": {**side, "encoding": "CSV"}}, "eventMetadata": meta}
        )

    def truth(key: str, label: str) -> str:
        return json.dumps(
            {
                "groundTruthData": {"data": label, "encoding": "CSV"},
                "eventMetadata": {"eventId": key},
                "eventVersion": "0",
            }
        )

    lines = [capture("a", "e1", "0.9"), capture(None, "e2", "0.2"), capture("c", "e3", "0.7")]
    env = {"probability_attribute": "0", "probability_threshold_attribute": "0.5"}
    pairs = merge(lines, [truth("a", "1"), truth("e2", "1"), truth("zz", "0")], env)
    assert pairs.truth == ["1", "1"]
    assert pairs.predicted == [1, 0] and pairs.probability == [0.9, 0.2]
    with pytest.raises(ValidationException, match="no captured prediction"):
        merge(lines, [truth("zz", "0")], env)
