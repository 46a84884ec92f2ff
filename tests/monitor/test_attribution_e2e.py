"""Feature-attribution drift through a real gateway and boto3: a model-explainability job
definition, NOW runs over captured traffic of an XGBoost endpoint, analysis.json,
constraint_violations.json and the CloudWatch series."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from modelhost.monitor import attribution
from modelhost.testing.churn import FEATURE_NAMES, csv_rows
from modelhost.testing.monitor import wait_processing_job
from modelhost.testing.s3 import local_s3_server, s3_client
from modelhost.testing.server import ModelhostServer
from tests.monitor.support import deploy_capturing, wait_records
from tests.support import FAST_ENV, ChurnModel, unique

pytestmark = pytest.mark.integration

CLARIFY = "205585389593.dkr.ecr.us-east-1.amazonaws.com/sagemaker-clarify-processing:1.0"
ROLE = "arn:aws:iam::123456789012:role/modelhost"
RESOURCES = {
    "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}
}


def definition(name: str, endpoint: str, config: str, constraints: Path, out: Path) -> Any:
    return {
        "JobDefinitionName": name,
        "ModelExplainabilityBaselineConfig": {"ConstraintsResource": {"S3Uri": str(constraints)}},
        "ModelExplainabilityAppSpecification": {"ImageUri": CLARIFY, "ConfigUri": config},
        "ModelExplainabilityJobInput": {
            "EndpointInput": {
                "EndpointName": endpoint,
                "LocalPath": "/opt/ml/processing/input/endpoint",
            }
        },
        "ModelExplainabilityJobOutputConfig": {
            "MonitoringOutputs": [
                {"S3Output": {"S3Uri": str(out), "LocalPath": "/opt/ml/processing/output"}}
            ]
        },
        "JobResources": RESOURCES,
        "RoleArn": ROLE,
    }


def run(sm: Any, name: str) -> tuple[dict[str, Any], Path]:
    sm.create_monitoring_schedule(
        MonitoringScheduleName=name,
        MonitoringScheduleConfig={
            "ScheduleConfig": {
                "ScheduleExpression": "NOW",
                "DataAnalysisStartTime": "-PT1H",
                "DataAnalysisEndTime": "-PT0H",
            },
            "MonitoringJobDefinitionName": name,
            "MonitoringType": "ModelExplainability",
        },
    )
    deadline = time.monotonic() + 120
    while True:
        found = sm.list_monitoring_executions(MonitoringScheduleName=name)[
            "MonitoringExecutionSummaries"
        ]
        done = [e for e in found if e["MonitoringExecutionStatus"] not in ("Pending", "InProgress")]
        if done:
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.3)
    job = sm.describe_processing_job(ProcessingJobName=done[0]["ProcessingJobArn"].split("/")[-1])
    assert job["AppSpecification"]["ImageUri"] == CLARIFY
    return done[0], Path(job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"])


def clarify_baseline(
    sm: Any, model: str, churn_model: ChurnModel, tmp_path: Path
) -> dict[str, attribution.LabelAttributions]:
    """What SageMakerClarifyProcessor.run_explainability sends for the churn model (label
    first, as the lab's training CSV); the analysis.json it wrote."""
    data, config = tmp_path / "clarify-data", tmp_path / "clarify-config"
    data.mkdir()
    config.mkdir()
    labels = churn_model.data.y[1000:2000]
    rows = csv_rows(churn_model.data.X[1000:2000])
    (data / "train.csv").write_text(
        "\n".join(f"{int(y)},{row}" for y, row in zip(labels, rows, strict=True)) + "\n"
    )
    analysis_config = {
        "dataset_type": "text/csv",
        "headers": ["Churn", *FEATURE_NAMES],
        "label": "Churn",
        "methods": {"shap": {"num_samples": 100, "agg_method": "mean_abs"}},
        "predictor": {"model_name": model, "instance_type": "ml.m5.xlarge",
                      "initial_instance_count": 1, "content_type": "text/csv"},
    }  # fmt: skip
    (config / "analysis_config.json").write_text(json.dumps(analysis_config))

    def mount(name: str, uri: Path, path: str) -> dict[str, Any]:
        return {
            "InputName": name,
            "S3Input": {
                "S3Uri": str(uri),
                "LocalPath": path,
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
            },
        }

    name = unique("clarify")
    sm.create_processing_job(
        ProcessingJobName=name,
        AppSpecification={"ImageUri": CLARIFY},
        ProcessingInputs=[
            mount("dataset", data, "/opt/ml/processing/input/data"),
            mount(
                "analysis_config",
                config / "analysis_config.json",
                "/opt/ml/processing/input/config",
            ),
        ],
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "analysis_result",
                    "S3Output": {
                        "S3Uri": str(tmp_path / "clarify-out"),
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        ProcessingResources=RESOURCES,
        RoleArn=ROLE,
    )
    desc = wait_processing_job(sm, name)
    assert desc["ProcessingJobStatus"] == "Completed", desc.get("FailureReason")
    doc = json.loads((tmp_path / "clarify-out" / "analysis.json").read_text())
    return attribution.read_analysis(doc)


def test_attribution_drift_runs_and_publishes(tmp_path: Path, churn_model: ChurnModel) -> None:
    env = {**FAST_ENV, "MODELHOST_CAPTURE_FLUSH_INTERVAL_S": "0.2"}
    headers = list(FEATURE_NAMES)
    baseline = attribution.explain(churn_model.booster, churn_model.data.X[1000:2000], headers)
    constraints = tmp_path / "analysis.json"
    constraints.write_text(json.dumps(attribution.analysis(baseline)))
    # A baseline whose order of importance is reversed: what live traffic drifting away
    # from it looks like.
    values = baseline["label0"].features
    ranked = sorted(values, key=values.__getitem__)
    reversed_ = dict(zip(ranked, sorted(values.values(), reverse=True), strict=True))
    drifted = tmp_path / "drifted.json"
    drifted.write_text(
        json.dumps(attribution.analysis({"label0": attribution.LabelAttributions(reversed_, 0.0)}))
    )
    with (
        local_s3_server() as s3_url,
        ModelhostServer(
            tmp_path / "home",
            env={
                **env,
                "MODELHOST_S3_ENDPOINT_URL": s3_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        ) as server,
    ):
        # ConfigUri must be an s3:// (or https://) URI.
        s3_client(s3_url).create_bucket(Bucket="explain")
        s3_client(s3_url).put_object(
            Bucket="explain",
            Key="analysis_config.json",
            Body=json.dumps({"headers": headers, "methods": {"shap": {}}}).encode(),
        )
        config = "s3://explain/analysis_config.json"
        sm, rt = server.clients()
        endpoint = unique("explain")
        deploy_capturing(sm, endpoint, str(churn_model.artifact), str(tmp_path / "capture"))
        for row in csv_rows(churn_model.data.X[:100]):
            rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)
        assert len(wait_records(tmp_path / "capture", 100)) == 100

        # The baseline from Clarify's explainability job (run_explainability's request)
        # over the same rows: the library's attributions.
        clarified = clarify_baseline(sm, endpoint, churn_model, tmp_path)
        assert attribution.drift(baseline, clarified)["label0"] == pytest.approx(1.0)
        assert clarified["label0"].features == pytest.approx(baseline["label0"].features)

        good = f"{endpoint}-good"
        clarify_analysis = tmp_path / "clarify-out" / "analysis.json"
        sm.create_model_explainability_job_definition(
            **definition(good, endpoint, config, clarify_analysis, tmp_path / "out")
        )
        described = sm.describe_model_explainability_job_definition(JobDefinitionName=good)
        assert described["ModelExplainabilityAppSpecification"]["ConfigUri"] == config
        listed = sm.list_model_explainability_job_definitions(EndpointName=endpoint)
        assert [d["MonitoringJobDefinitionName"] for d in listed["JobDefinitionSummaries"]] == [
            good
        ]
        execution, folder = run(sm, good)
        assert execution["MonitoringExecutionStatus"] == "Completed", execution.get("FailureReason")
        assert json.loads((folder / "constraint_violations.json").read_text())["violations"] == []
        live = attribution.read_analysis(json.loads((folder / "analysis.json").read_text()))
        assert attribution.drift(baseline, live)["label0"] >= 0.9

        bad = f"{endpoint}-bad"
        sm.create_model_explainability_job_definition(
            **definition(bad, endpoint, config, drifted, tmp_path / "out")
        )
        execution, folder = run(sm, bad)
        assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations", execution
        violations = json.loads((folder / "constraint_violations.json").read_text())["violations"]
        assert [(v["label"], v["constraint_check_type"]) for v in violations] == [
            ("label0", "feature_attribution_drift_check")
        ]

        cw = server.client("cloudwatch")
        metrics = cw.list_metrics(Namespace="aws/sagemaker/Endpoints/explainability-metrics")
        names = {m["MetricName"] for m in metrics["Metrics"]}
        assert {"ndcg", "ExpectedValue", "feature_Day Mins"} <= names

        with pytest.raises(sm.exceptions.ResourceInUse):
            sm.delete_model_explainability_job_definition(JobDefinitionName=bad)
        sm.delete_monitoring_schedule(MonitoringScheduleName=bad)
        sm.delete_model_explainability_job_definition(JobDefinitionName=bad)
        with pytest.raises(sm.exceptions.ClientError):
            sm.describe_model_explainability_job_definition(JobDefinitionName=bad)
