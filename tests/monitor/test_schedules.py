"""MonitoringSchedules' loop with a FakeClock and a real metadata store: which runs start,
which do not, and what an execution reports when its endpoint captures nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelhost.errors import ValidationException
from modelhost.jobs.monitoring import MonitoringSchedules
from modelhost.settings import Settings
from modelhost.store.metadata import Kind, MetadataStore, Record
from modelhost.testing.clock import FakeClock

ANALYZER = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
HOUR_S = 10.0


class FakeProcessing:
    """Records submitted runs instead of analyzing."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []

    def submit(self, name: str, request: dict[str, Any], **_: Any) -> str:
        self.submitted.append(request)
        return f"arn:processing-job/{name}"


def endpoint(store: MetadataStore, name: str, capture: bool = True) -> None:
    config: dict[str, Any] = {"ProductionVariants": []}
    if capture:
        config["DataCaptureConfig"] = {"EnableCapture": True, "DestinationS3Uri": "/capture"}
    store.create(
        Record(Kind.ENDPOINT, name, f"arn:{name}", {"Config": config}, [], "InService", None, 0, 0)
    )


def config(endpoint_name: str, expression: str) -> dict[str, Any]:
    return {
        "ScheduleConfig": {"ScheduleExpression": expression},
        "MonitoringJobDefinition": {
            "BaselineConfig": {
                "ConstraintsResource": {"S3Uri": "/b/constraints.json"},
                "StatisticsResource": {"S3Uri": "/b/statistics.json"},
            },
            "MonitoringInputs": [
                {"EndpointInput": {"EndpointName": endpoint_name, "LocalPath": "/opt/in"}}
            ],
            "MonitoringOutputConfig": {
                "MonitoringOutputs": [{"S3Output": {"S3Uri": "/out", "LocalPath": "/opt/out"}}]
            },
            "MonitoringResources": {},
            "MonitoringAppSpecification": {"ImageUri": ANALYZER},
            "RoleArn": "arn:role",
        },
    }


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[MonitoringSchedules, FakeProcessing, FakeClock, MetadataStore]:
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    clock = FakeClock(1000 * HOUR_S + 1)
    processing = FakeProcessing()
    settings = Settings(home=tmp_path, monitoring_hour_s=HOUR_S)
    schedules = MonitoringSchedules(settings, store, processing, clock)  # type: ignore[arg-type]
    endpoint(store, "ep")
    return schedules, processing, clock, store


def test_hourly_runs_once_per_hour_and_not_when_stopped(setup: Any) -> None:
    schedules, processing, clock, _ = setup
    schedules.create_schedule(
        {
            "MonitoringScheduleName": "s",
            "MonitoringScheduleConfig": config("ep", "cron(0 * ? * * *)"),
        }
    )
    schedules.tick()
    assert processing.submitted == []  # the first run is in the next hour
    clock.advance(HOUR_S)
    schedules.tick()
    schedules.tick()
    (run,) = processing.submitted
    env = run["Environment"]
    assert (env["start_time"], env["end_time"]) == ("1970-01-01T02:46:40Z", "1970-01-01T02:46:50Z")
    assert run["ProcessingInputs"][0]["S3Input"]["S3Uri"] == "/capture/ep/"
    assert run["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"].startswith("/out/ep/s/")
    schedules.operations["StopMonitoringSchedule"]({"MonitoringScheduleName": "s"})
    clock.advance(HOUR_S)
    schedules.tick()
    assert len(processing.submitted) == 1
    schedules.operations["StartMonitoringSchedule"]({"MonitoringScheduleName": "s"})
    schedules.tick()
    assert len(processing.submitted) == 2


def test_now_runs_once_and_a_run_without_capture_fails(setup: Any) -> None:
    schedules, processing, clock, store = setup
    schedules.create_schedule(
        {"MonitoringScheduleName": "n", "MonitoringScheduleConfig": config("ep", "NOW")}
    )
    schedules.tick()
    clock.advance(HOUR_S * 3)
    schedules.tick()
    assert len(processing.submitted) == 1
    # The endpoint loses its capture (updated config): the next run fails with a reason.
    rec = store.get(Kind.ENDPOINT, "ep")
    rec.spec["Config"].pop("DataCaptureConfig")
    store.save(rec)
    # Run the NOW schedule again (as UpdateMonitoringSchedule does).
    sched = store.get(Kind.MONITORING_SCHEDULE, "n")
    sched.spec["Fired"] = False
    store.save(sched)
    schedules.tick()
    executions = schedules.list_executions({"MonitoringScheduleName": "n"})
    statuses = sorted(
        e["MonitoringExecutionStatus"] for e in executions["MonitoringExecutionSummaries"]
    )
    assert statuses[0] == "Failed"
    failed = next(
        e
        for e in executions["MonitoringExecutionSummaries"]
        if e["MonitoringExecutionStatus"] == "Failed"
    )
    assert "does not capture data" in failed["FailureReason"]


def test_schedules_are_checked_on_create(setup: Any) -> None:
    schedules, _, _, store = setup
    endpoint(store, "quiet", capture=False)
    bad = [
        config("missing", "NOW"),
        config("quiet", "NOW"),
        config("ep", "cron(30 * ? * * *)"),
    ]
    other = config("ep", "NOW")
    other["MonitoringJobDefinition"]["MonitoringAppSpecification"]["ImageUri"] = "my-image"
    bad.append(other)
    inside = config("ep", "NOW")
    inside["MonitoringJobDefinition"]["MonitoringOutputConfig"]["MonitoringOutputs"][0]["S3Output"][
        "S3Uri"
    ] = str(schedules.settings.home / "reports")
    bad.append(inside)
    for i, cfg in enumerate(bad):
        with pytest.raises(ValidationException):
            schedules.create_schedule(
                {"MonitoringScheduleName": f"b{i}", "MonitoringScheduleConfig": cfg}
            )
