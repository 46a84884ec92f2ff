"""The ModelExplainability plumbing without processes: job definitions and run requests,
the processing job's checks, the endpoint's model, and one analysis over capture lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.errors import DatasetError, ResourceInUse, ValidationException
from modelhost.jobs import explainability
from modelhost.jobs import monitoring_request as requests
from modelhost.jobs.monitoring import MonitoringSchedules
from modelhost.monitor import attribution
from modelhost.settings import Settings
from modelhost.store.cache_bound import Leased
from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.testing.churn import (
    FEATURE_NAMES,
    csv_rows,
    make_churn,
    train_xgboost,
    xgboost_model_bytes,
)
from modelhost.testing.clock import FakeClock
from tests.monitor.support import capture_line

CLARIFY = "205585389593.dkr.ecr.us-east-1.amazonaws.com/sagemaker-clarify-processing:1.0"
ANALYZER = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"


def job(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "JobDefinitionName": "explain",
        "ModelExplainabilityBaselineConfig": {"ConstraintsResource": {"S3Uri": "/b/analysis.json"}},
        "ModelExplainabilityAppSpecification": {
            "ImageUri": CLARIFY,
            "ConfigUri": "s3://bucket/analysis_config.json",
            "Environment": {"ndcg_threshold": "0.8"},
        },
        "ModelExplainabilityJobInput": {
            "EndpointInput": {"EndpointName": "ep", "LocalPath": "/opt/ml/processing/input/ep"}
        },
        "ModelExplainabilityJobOutputConfig": {
            "MonitoringOutputs": [{"S3Output": {"S3Uri": "/out", "LocalPath": "/opt/out"}}]
        },
        "JobResources": {},
        "RoleArn": "arn:role",
    }
    out.update(changes)
    return out


def test_definition_and_run_request() -> None:
    d = requests.from_model_explainability(job())
    assert (d.endpoint, d.constraints_uri, d.config_uri) == (
        "ep",
        "/b/analysis.json",
        "s3://bucket/analysis_config.json",
    )
    request = requests.processing_request(d, "sched", "/capture/ep", 3600.0, (0.0, 3600.0))
    env = request["Environment"]
    assert env["analysis_type"] == "MODEL_EXPLAINABILITY"
    assert env["analysis_config"] == explainability.CONFIG_PATH
    assert env["ndcg_threshold"] == "0.8"
    assert "baseline_statistics" not in env
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["analysis_config"]["S3Uri"] == "s3://bucket/analysis_config.json"
    assert request["AppSpecification"]["ImageUri"] == CLARIFY
    checked: list[str] = []
    explainability.check(request, "sagemaker-model-monitor-analyzer", checked.append)
    assert checked == [explainability.CONFIG_PATH]


def test_definition_is_validated() -> None:
    with pytest.raises(ValidationException, match="ConstraintsResource"):
        requests.from_model_explainability(job(ModelExplainabilityBaselineConfig={}))
    app = {"ImageUri": "my/own-image", "ConfigUri": "s3://b/c.json"}
    with pytest.raises(ValidationException, match="sagemaker-clarify-processing"):
        requests.from_model_explainability(job(ModelExplainabilityAppSpecification=app))
    analyzer_app = {"ImageUri": ANALYZER, "ConfigUri": "s3://b/c.json"}
    assert requests.from_model_explainability(job(ModelExplainabilityAppSpecification=analyzer_app))


@pytest.mark.parametrize(
    ("image", "env", "message"),
    [
        ("123.dkr.ecr.us-east-1.amazonaws.com/my-own:1", {}, "ImageUri"),
        (CLARIFY, {"analysis_type": "MODEL_EXPLAINABILITY"}, "analysis_config"),
        (
            CLARIFY,
            {
                "analysis_type": "MODEL_EXPLAINABILITY",
                "analysis_config": "/c",
                "ndcg_threshold": "2",
            },
            "ndcg_threshold",
        ),
        (
            ANALYZER,
            {
                "analysis_type": "MODEL_EXPLAINABILITY",
                "analysis_config": "/c",
                "ndcg_threshold": "x",
            },
            "ndcg_threshold",
        ),
    ],
)
def test_processing_checks(image: str, env: dict[str, str], message: str) -> None:
    request = {"AppSpecification": {"ImageUri": image}, "Environment": env}
    with pytest.raises(ValidationException, match=message):
        explainability.check(request, "sagemaker-model-monitor-analyzer", lambda path: path)


def _store(tmp_path: Path, url: str | None) -> MetadataStore:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    container = {"Image": "xgboost", **({"ModelDataUrl": url} if url else {})}
    spec = {
        "Config": {"ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m"}]},
        "Models": {"m": {"PrimaryContainer": container}},
    }
    store.create(Record(Kind.ENDPOINT, "ep", "arn:ep", spec, [], "InService", None, 0, 0))
    return store


def test_the_endpoints_model(tmp_path: Path) -> None:
    assert explainability.model_data_url(_store(tmp_path / "a", "/models/m.tar.gz"), "ep") == (
        "/models/m.tar.gz"
    )
    with pytest.raises(DatasetError, match="no ModelDataUrl"):
        explainability.model_data_url(_store(tmp_path / "b", None), "ep")
    with pytest.raises(DatasetError, match="does not exist"):
        explainability.model_data_url(_store(tmp_path / "c", None), "other")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a model")
    with pytest.raises(DatasetError, match="XGBoost or LightGBM"):
        explainability.load_tree_model(empty)


def test_analysis_over_capture_lines(tmp_path: Path) -> None:
    data = make_churn(1200)
    booster = train_xgboost(data, num_round=20)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "xgboost-model").write_bytes(xgboost_model_bytes(booster))
    store = _store(tmp_path, str(model_dir))

    class Artifacts:
        def use(self, url: str) -> Leased:
            assert url == str(model_dir)
            return Leased(model_dir)

    runner = explainability.Explainability(store, Artifacts)  # type: ignore[arg-type]
    headers = list(FEATURE_NAMES)
    constraints = attribution.analysis(attribution.explain(booster, data.X[:800], headers))
    lines = [capture_line(row) for row in csv_rows(data.X[800:1000])]
    written: dict[str, Any] = {}
    env = {"sagemaker_endpoint_name": "ep"}
    found, series = runner.analyze(
        env, lines, constraints, {"headers": headers}, lambda n, doc: written.update({n: doc})
    )
    assert found == []
    assert written["constraint_violations.json"] == {"version": "1.0", "violations": []}
    live = attribution.read_analysis(written["analysis.json"])
    assert attribution.drift(attribution.read_analysis(constraints), live)["label0"] > 0.9
    calls = explainability.put_metric_data(
        {**env, "sagemaker_monitoring_schedule_name": "s"}, series
    )
    assert calls[0]["Namespace"] == "aws/sagemaker/Endpoints/explainability-metrics"
    ndcg = [m for call in calls for m in call["MetricData"] if m["MetricName"] == "ndcg"]
    assert {d["Name"]: d["Value"] for d in ndcg[0]["Dimensions"]} == {
        "Endpoint": "ep",
        "MonitoringSchedule": "s",
        "ExplainabilityMethod": "KernelShap",
        "Label": "label0",
    }
    # An impossible threshold: every run violates.
    found, _ = runner.analyze(
        {**env, "ndcg_threshold": "1.0"},
        [capture_line(row) for row in csv_rows(np.zeros((5, len(headers))))],
        constraints,
        {"headers": headers},
        lambda n, doc: None,
    )
    assert [v["constraint_check_type"] for v in found] == ["feature_attribution_drift_check"]
    with pytest.raises(DatasetError, match="no captured data"):
        runner.analyze(env, [], constraints, {"headers": headers}, lambda n, doc: None)
    assert json.dumps(written["analysis.json"])  # JSON-serialisable as written


class FakeProcessing:
    """Records submitted runs instead of analyzing."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []

    def submit(self, name: str, request: dict[str, Any], **_: Any) -> str:
        self.submitted.append(request)
        return f"arn:processing-job/{name}"


def test_schedules_of_explainability_definitions(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    capture = {"EnableCapture": True, "DestinationS3Uri": "/capture"}
    spec = {"Config": {"ProductionVariants": [], "DataCaptureConfig": capture}}
    store.create(Record(Kind.ENDPOINT, "ep", "arn:ep", spec, [], "InService", None, 0, 0))
    clock = FakeClock(10_001.0)
    processing = FakeProcessing()
    settings = Settings(home=tmp_path, monitoring_hour_s=10.0)
    schedules = MonitoringSchedules(settings, store, processing, clock)  # type: ignore[arg-type]
    ops = schedules.operations
    assert ops["CreateModelExplainabilityJobDefinition"](job())["JobDefinitionArn"].endswith(
        ":model-explainability-job-definition/explain"
    )
    listed = ops["ListModelExplainabilityJobDefinitions"]({"EndpointName": "ep"})
    assert [s["MonitoringJobDefinitionName"] for s in listed["JobDefinitionSummaries"]] == [
        "explain"
    ]
    now = {
        "ScheduleExpression": "NOW",
        "DataAnalysisStartTime": "-PT1H",
        "DataAnalysisEndTime": "-PT0H",
    }
    named = {
        "ScheduleConfig": now,
        "MonitoringJobDefinitionName": "explain",
        "MonitoringType": "ModelExplainability",
    }
    schedules.create_schedule({"MonitoringScheduleName": "s", "MonitoringScheduleConfig": named})
    schedules.tick()
    assert [r["Environment"]["analysis_type"] for r in processing.submitted] == [
        "MODEL_EXPLAINABILITY"
    ]
    # An inline definition is a data-quality one, never run as another type.
    inline = {
        "ScheduleConfig": now,
        "MonitoringType": "ModelExplainability",
        "MonitoringJobDefinition": {"MonitoringAppSpecification": {"ImageUri": ANALYZER}},
    }
    with pytest.raises(ValidationException, match="inline"):
        schedules.create_schedule(
            {"MonitoringScheduleName": "i", "MonitoringScheduleConfig": inline}
        )
    with pytest.raises(ResourceInUse, match="uses job definition"):
        ops["DeleteModelExplainabilityJobDefinition"]({"JobDefinitionName": "explain"})
