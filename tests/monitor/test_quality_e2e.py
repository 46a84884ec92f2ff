"""Model quality through a real gateway and boto3: captured predictions with InferenceIds,
ground truth uploaded in SageMaker's format, model-quality job definitions and NOW runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from modelhost.monitor.quality import quality_statistics
from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.monitor.support import deploy_capturing, wait_records
from tests.support import FAST_ENV, ChurnModel, unique

pytestmark = pytest.mark.integration

ANALYZER = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
ROLE = "arn:aws:iam::123456789012:role/modelhost"
RESOURCES = {
    "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}
}


def ground_truth(folder: Path, labels: list[int]) -> Path:
    hour = folder / time.strftime("%Y/%m/%d/%H", time.gmtime())
    hour.mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "groundTruthData": {"data": str(label), "encoding": "CSV"},
                "eventMetadata": {"eventId": f"r{i}"},
                "eventVersion": "0",
            }
        )
        for i, label in enumerate(labels)
    ]
    (hour / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def run(sm: Any, name: str, endpoint: str, truth: Path, constraints: Path, out: Path) -> Any:
    sm.create_model_quality_job_definition(
        JobDefinitionName=name,
        ModelQualityBaselineConfig={"ConstraintsResource": {"S3Uri": str(constraints)}},
        ModelQualityAppSpecification={"ImageUri": ANALYZER, "ProblemType": "BinaryClassification"},
        ModelQualityJobInput={
            "EndpointInput": {
                "EndpointName": endpoint,
                "LocalPath": "/opt/ml/processing/input/endpoint",
                "ProbabilityAttribute": "0",
                "ProbabilityThresholdAttribute": 0.5,
            },
            "GroundTruthS3Input": {"S3Uri": str(truth)},
        },
        ModelQualityJobOutputConfig={
            "MonitoringOutputs": [
                {"S3Output": {"S3Uri": str(out), "LocalPath": "/opt/ml/processing/output"}}
            ]
        },
        JobResources=RESOURCES,
        RoleArn=ROLE,
    )
    sm.create_monitoring_schedule(
        MonitoringScheduleName=name,
        MonitoringScheduleConfig={
            "ScheduleConfig": {
                "ScheduleExpression": "NOW",
                "DataAnalysisStartTime": "-PT1H",
                "DataAnalysisEndTime": "-PT0H",
            },
            "MonitoringJobDefinitionName": name,
            "MonitoringType": "ModelQuality",
        },
    )
    deadline = time.monotonic() + 120
    while True:
        found = sm.list_monitoring_executions(MonitoringScheduleName=name)[
            "MonitoringExecutionSummaries"
        ]
        done = [e for e in found if e["MonitoringExecutionStatus"] not in ("Pending", "InProgress")]
        if done:
            execution = done[0]
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.3)
    job = sm.describe_processing_job(ProcessingJobName=execution["ProcessingJobArn"].split("/")[-1])
    folder = Path(job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"])
    violations = json.loads((folder / "constraint_violations.json").read_text())["violations"]
    return execution, violations


def test_model_quality_runs_against_ground_truth(tmp_path: Path, churn_model: ChurnModel) -> None:
    env = {**FAST_ENV, "MODELHOST_CAPTURE_FLUSH_INTERVAL_S": "0.2"}
    X, y = churn_model.data.X[:150], churn_model.data.y[:150].astype(int).tolist()
    with ModelhostServer(tmp_path / "home", env=env) as server:
        sm, rt = server.clients()
        endpoint = unique("quality")
        deploy_capturing(sm, endpoint, str(churn_model.artifact), str(tmp_path / "capture"))
        for i, row in enumerate(csv_rows(X)):
            rt.invoke_endpoint(
                EndpointName=endpoint, ContentType="text/csv", Body=row, InferenceId=f"r{i}"
            )
        assert len(wait_records(tmp_path / "capture", 150)) == 150
        prob = churn_model.expected(X)
        stats = quality_statistics("BinaryClassification", y, (prob > 0.5).astype(int), prob)
        accuracy = stats["binary_classification_metrics"]["accuracy"]["value"]
        constraints = tmp_path / "constraints.json"
        rules = {
            "accuracy": {"threshold": accuracy - 0.05, "comparison_operator": "LessThanThreshold"}
        }
        constraints.write_text(
            json.dumps({"version": 0.0, "binary_classification_constraints": rules})
        )

        good = ground_truth(tmp_path / "truth-good", y)
        execution, violations = run(
            sm, f"{endpoint}-good", endpoint, good, constraints, tmp_path / "out"
        )
        assert execution["MonitoringExecutionStatus"] == "Completed", execution
        assert violations == []

        flipped = ground_truth(tmp_path / "truth-flipped", [1 - v for v in y])
        execution, violations = run(
            sm, f"{endpoint}-bad", endpoint, flipped, constraints, tmp_path / "out"
        )
        assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations", execution
        assert [v["metric_name"] for v in violations] == ["accuracy"]
        assert violations[0]["constraint_check_type"] == "LessThanThreshold"
        cw = server.client("cloudwatch")
        names = {
            m["MetricName"]
            for m in cw.list_metrics(Namespace="aws/sagemaker/Endpoints/model-metrics")["Metrics"]
        }
        assert {"accuracy", "auc", "f1"} <= names
