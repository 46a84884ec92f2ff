"""Model Monitor over a batch transform job, through a real gateway and boto3: a transform
job with DataCaptureConfig writes SageMaker's batch capture (input and output manifests,
inference ids in the outputs), and a NOW data-quality schedule with a BatchTransformInput
over that capture reports exactly the drift planted in the job's input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.testing import monitor
from modelhost.testing.churn import make_churn
from modelhost.testing.server import ModelhostServer
from tests.jobs.support import transform
from tests.monitor.support import create_raw_model, table_baseline, table_rows
from tests.support import FAST_ENV, ChurnModel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def batch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    with ModelhostServer(tmp_path_factory.mktemp("batch-monitor-home"), env=FAST_ENV) as srv:
        yield srv


def test_now_execution_over_a_transform_jobs_capture(
    batch_server: ModelhostServer, churn_model: ChurnModel, tmp_path: Path
) -> None:
    sm, _ = batch_server.clients()
    model = create_raw_model(sm, churn_model.artifact, tmp_path)
    baseline = table_baseline(sm, tmp_path)
    data = tmp_path / "batch-in"
    data.mkdir()
    rows = table_rows(make_churn(400, seed=8), shift={"Day Mins": 80.0}, new_state_every=20)
    (data / "rows.csv").write_text("\n".join(rows) + "\n")
    capture = tmp_path / "batch-capture"
    job = transform(
        sm,
        model,
        str(data),
        str(tmp_path / "batch-out"),
        BatchStrategy="SingleRecord",  # an output line per record, each with its id
        Accept="text/csv",
        DataCaptureConfig={"DestinationS3Uri": str(capture), "GenerateInferenceId": True},
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["DataCaptureConfig"]["DestinationS3Uri"] == str(capture)

    # SageMaker's layout: manifests of the inputs and of the outputs, by the hour.
    [inputs] = list((capture / "input").rglob("*.json"))
    assert json.loads(inputs.read_text()) == [{"prefix": f"{data}/"}, "rows.csv"]
    assert (capture / "output" / inputs.relative_to(capture / "input")).is_file()
    predictions = (tmp_path / "batch-out" / "rows.csv.out").read_text().splitlines()
    assert len(predictions) == len(rows) and all(p.count(",") == 2 for p in predictions)

    schedule = f"{model}-batch-dq"
    definition = monitor.job_definition("", str(Path(baseline["constraints"]).parent), "")
    definition["MonitoringInputs"] = [
        {
            "BatchTransformInput": {
                "DataCapturedDestinationS3Uri": str(capture),
                "DatasetFormat": {"Csv": {"Header": False}},
                "LocalPath": "/opt/ml/processing/input",
            }
        }
    ]
    reports = tmp_path / "batch-reports"
    definition["MonitoringOutputConfig"]["MonitoringOutputs"][0]["S3Output"]["S3Uri"] = str(reports)
    execution = monitor.run_now(sm, schedule, definition)
    assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations", execution
    stats, violations = monitor.execution_outputs(sm, execution)
    assert stats["dataset"]["item_count"] == len(rows)
    assert {(v["feature_name"], v["constraint_check_type"]) for v in violations} == {
        ("Day Mins", "baseline_drift_check"),
        ("State", "categorical_values_check"),
    }
    assert "EndpointName" not in sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)
    cw = batch_server.client("cloudwatch")
    listed = cw.list_metrics(Namespace="aws/sagemaker/ModelMonitoring/data-metrics")["Metrics"]
    assert any(m["MetricName"] == "feature_baseline_drift_Day Mins" for m in listed)
