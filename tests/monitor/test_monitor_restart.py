"""A monitoring schedule survives a gateway restart: it stays Scheduled, keeps its
executions, and runs again afterwards (hours made 3 s long by MODELHOST_MONITORING_HOUR_S)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.monitor.analyzer import suggest_baseline
from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.monitor.support import deploy_capturing, wait_in_service
from tests.support import FAST_ENV, ChurnModel, unique

pytestmark = pytest.mark.integration

ANALYZER = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"


def executions(sm: Any, schedule: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = sm.list_monitoring_executions(
        MonitoringScheduleName=schedule, MaxResults=100
    )["MonitoringExecutionSummaries"]
    return found


def test_schedule_survives_a_restart(tmp_path: Path, churn_model: ChurnModel) -> None:
    rows = csv_rows(churn_model.data.X[:400])
    stats, constraints = suggest_baseline(["\n".join(rows)], {"csv": {"header": False}})
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    (baseline / "statistics.json").write_text(json.dumps(stats))
    (baseline / "constraints.json").write_text(json.dumps(constraints))
    env = {
        **FAST_ENV,
        "MODELHOST_CAPTURE_FLUSH_INTERVAL_S": "0.2",
        "MODELHOST_MONITORING_HOUR_S": "3",
    }
    server = ModelhostServer(tmp_path / "home", env=env).start()
    try:
        sm, rt = server.clients()
        name = unique("restart")
        deploy_capturing(sm, name, str(churn_model.artifact), str(tmp_path / "capture"))
        schedule = f"{name}-hourly"
        sm.create_monitoring_schedule(
            MonitoringScheduleName=schedule,
            MonitoringScheduleConfig={
                "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                "MonitoringJobDefinition": {
                    "BaselineConfig": {
                        "ConstraintsResource": {"S3Uri": str(baseline / "constraints.json")},
                        "StatisticsResource": {"S3Uri": str(baseline / "statistics.json")},
                    },
                    "MonitoringInputs": [
                        {"EndpointInput": {"EndpointName": name, "LocalPath": "/opt/in"}}
                    ],
                    "MonitoringOutputConfig": {
                        "MonitoringOutputs": [
                            {"S3Output": {"S3Uri": str(tmp_path / "out"), "LocalPath": "/opt/out"}}
                        ]
                    },
                    "MonitoringResources": {
                        "ClusterConfig": {
                            "InstanceCount": 1,
                            "InstanceType": "ml.m5.xlarge",
                            "VolumeSizeInGB": 20,
                        }
                    },
                    "MonitoringAppSpecification": {"ImageUri": ANALYZER},
                    "RoleArn": "arn:aws:iam::123456789012:role/modelhost",
                },
            },
        )
        deadline = time.monotonic() + 90
        while not executions(sm, schedule):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        before = len(executions(sm, schedule))
        server.restart()
        sm, rt = server.clients()
        wait_in_service(sm, name)
        restarted = time.time()
        desc = sm.describe_monitoring_schedule(MonitoringScheduleName=schedule)
        assert desc["MonitoringScheduleStatus"] == "Scheduled"
        assert len(executions(sm, schedule)) >= before
        deadline = time.monotonic() + 90
        while True:
            # Instances come back after the gateway: 503 meanwhile, retried here.
            with contextlib.suppress(ClientError):
                rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=rows[0])
            later = [
                e
                for e in executions(sm, schedule)
                if e["ScheduledTime"].timestamp() >= restarted
                and e["MonitoringExecutionStatus"] in ("Completed", "CompletedWithViolations")
            ]
            if later:
                break
            assert time.monotonic() < deadline, executions(sm, schedule)
            time.sleep(0.3)
    finally:
        server.stop()
