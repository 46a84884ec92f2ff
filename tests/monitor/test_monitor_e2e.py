"""Model Monitor through a real gateway and boto3: a baseline processing job from the churn
training data, NOW executions over undrifted and drifted captured traffic, a drift alarm,
and an hourly schedule made fast by MODELHOST_MONITORING_HOUR_S."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from modelhost.testing import monitor
from modelhost.testing.churn import make_churn
from modelhost.testing.monitor import RESOURCES, ROLE, execution_outputs, wait_execution
from modelhost.testing.server import ModelhostServer
from tests.monitor.support import (
    MONITOR_COLUMNS,
    create_raw_model,
    deploy_raw,
    job_definition,
    send,
    table_baseline,
    table_rows,
    wait_captured,
)
from tests.support import FAST_ENV, ChurnModel, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def monitor_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    env = {
        **FAST_ENV,
        "MODELHOST_CAPTURE_FLUSH_INTERVAL_S": "0.2",
        "MODELHOST_MONITORING_HOUR_S": "4",
    }
    with ModelhostServer(tmp_path_factory.mktemp("monitor-home"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitor-work")


@pytest.fixture(scope="module")
def raw_model(monitor_server: ModelhostServer, churn_model: ChurnModel, work: Path) -> str:
    sm, _ = monitor_server.clients()
    return create_raw_model(sm, churn_model.artifact, work)


@pytest.fixture(scope="module")
def baseline(monitor_server: ModelhostServer, work: Path) -> dict[str, str]:
    """suggest_baseline's processing job over the churn training data (CSV with header)."""
    sm, _ = monitor_server.clients()
    return table_baseline(sm, work)


def test_baseline_outputs_and_refused_images(
    monitor_server: ModelhostServer, baseline: dict[str, str]
) -> None:
    stats = json.loads(Path(baseline["statistics"]).read_text())
    constraints = json.loads(Path(baseline["constraints"]).read_text())
    assert [f["name"] for f in stats["features"]] == list(MONITOR_COLUMNS)
    assert (
        constraints["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.1
    )
    sm, _ = monitor_server.clients()
    with pytest.raises(ClientError) as info:
        sm.create_processing_job(
            ProcessingJobName=unique("other"),
            AppSpecification={"ImageUri": "123.dkr.ecr.us-east-1.amazonaws.com/my-processing:1"},
            ProcessingResources=RESOURCES,
            RoleArn=ROLE,
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "sagemaker-model-monitor-analyzer" in info.value.response["Error"]["Message"]
    names = [j["ProcessingJobName"] for j in sm.list_processing_jobs()["ProcessingJobSummaries"]]
    assert any(n.startswith("baseline-") for n in names)


def test_now_executions_find_exactly_the_drifted_features_and_alarm(
    monitor_server: ModelhostServer, raw_model: str, baseline: dict[str, str], work: Path
) -> None:
    sm, rt = monitor_server.clients()
    capture = work / "capture"
    calm, drifted = deploy_raw(sm, raw_model, capture), deploy_raw(sm, raw_model, capture)
    send(rt, calm, table_rows(make_churn(600, seed=7)))
    send(
        rt,
        drifted,
        table_rows(make_churn(600, seed=8), shift={"Day Mins": 80.0}, new_state_every=20),
    )
    wait_captured(capture, calm, 30)
    wait_captured(capture, drifted, 30)
    now = {
        "ScheduleExpression": "NOW",
        "DataAnalysisStartTime": "-PT1H",
        "DataAnalysisEndTime": "-PT0H",
    }

    # Undrifted traffic, inline job definition: no violation.
    sm.create_monitoring_schedule(
        MonitoringScheduleName=f"{calm}-dq",
        MonitoringScheduleConfig={
            "ScheduleConfig": now,
            "MonitoringJobDefinition": job_definition(calm, baseline, work / "reports"),
            "MonitoringType": "DataQuality",
        },
    )
    execution = wait_execution(sm, f"{calm}-dq")
    assert execution["MonitoringExecutionStatus"] == "Completed", execution
    stats, violations = execution_outputs(sm, execution)
    assert violations == []
    assert stats["dataset"]["item_count"] == 600

    # Drifted traffic, through CreateDataQualityJobDefinition: exactly the two features.
    definition = job_definition(drifted, baseline, work / "reports")
    sm.create_data_quality_job_definition(
        JobDefinitionName=f"{drifted}-def",
        DataQualityBaselineConfig=definition["BaselineConfig"],
        DataQualityAppSpecification={"ImageUri": monitor.ANALYZER_IMAGE},
        DataQualityJobInput={"EndpointInput": definition["MonitoringInputs"][0]["EndpointInput"]},
        DataQualityJobOutputConfig=definition["MonitoringOutputConfig"],
        JobResources=RESOURCES,
        RoleArn=ROLE,
    )
    sm.create_monitoring_schedule(
        MonitoringScheduleName=f"{drifted}-dq",
        MonitoringScheduleConfig={
            "ScheduleConfig": now,
            "MonitoringJobDefinitionName": f"{drifted}-def",
            "MonitoringType": "DataQuality",
        },
    )
    execution = wait_execution(sm, f"{drifted}-dq")
    assert execution["MonitoringExecutionStatus"] == "CompletedWithViolations", execution
    _, violations = execution_outputs(sm, execution)
    assert {(v["feature_name"], v["constraint_check_type"]) for v in violations} == {
        ("Day Mins", "baseline_drift_check"),
        ("State", "categorical_values_check"),
    }
    desc = sm.describe_monitoring_schedule(MonitoringScheduleName=f"{drifted}-dq")
    assert (
        desc["LastMonitoringExecutionSummary"]["MonitoringExecutionStatus"]
        == "CompletedWithViolations"
    )
    assert desc["EndpointName"] == drifted

    # The drift is a CloudWatch series; an alarm on it goes to ALARM.
    cw = monitor_server.client("cloudwatch")
    dims = [
        {"Name": "Endpoint", "Value": drifted},
        {"Name": "MonitoringSchedule", "Value": f"{drifted}-dq"},
    ]
    cw.put_metric_alarm(
        AlarmName=f"{drifted}-drift",
        Namespace="aws/sagemaker/Endpoints/data-metrics",
        MetricName="feature_baseline_drift_Day Mins",
        Dimensions=dims,
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0.1,
        ComparisonOperator="GreaterThanThreshold",
    )
    deadline = time.monotonic() + 60
    while True:
        state = cw.describe_alarms(AlarmNames=[f"{drifted}-drift"])["MetricAlarms"][0]["StateValue"]
        if state == "ALARM" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert state == "ALARM"


def test_hourly_schedule_runs_every_fast_hour_and_stops(
    monitor_server: ModelhostServer, raw_model: str, baseline: dict[str, str], work: Path
) -> None:
    sm, rt = monitor_server.clients()
    capture = work / "capture-hourly"
    endpoint = deploy_raw(sm, raw_model, capture)
    row = table_rows(make_churn(1, seed=3))[0]
    schedule = f"{endpoint}-hourly"
    sm.create_monitoring_schedule(
        MonitoringScheduleName=schedule,
        MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
            "MonitoringJobDefinition": job_definition(endpoint, baseline, work / "hourly"),
        },
    )
    # Traffic all along, so every (4 s) hour has data to analyze.
    deadline = time.monotonic() + 120
    while True:
        rt.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)
        found = sm.list_monitoring_executions(MonitoringScheduleName=schedule)[
            "MonitoringExecutionSummaries"
        ]
        # One row over and over is drifted from the baseline: violations, as expected.
        if any(e["MonitoringExecutionStatus"] == "CompletedWithViolations" for e in found):
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    scheduled = [e["ScheduledTime"].timestamp() for e in found]
    assert all(abs(t / 4 - round(t / 4)) < 1e-6 for t in scheduled)  # on slot boundaries
    sm.stop_monitoring_schedule(MonitoringScheduleName=schedule)
    assert (
        sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)["MonitoringScheduleStatus"]
        == "Stopped"
    )
    listed = sm.list_monitoring_schedules(EndpointName=endpoint)["MonitoringScheduleSummaries"]
    assert [s["MonitoringScheduleName"] for s in listed] == [schedule]
    sm.delete_monitoring_schedule(MonitoringScheduleName=schedule)
    with pytest.raises(ClientError):
        sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)
