"""An endpoint's Model Monitor state for the dashboard, read as the SDK reads it.

The schedules come from ListMonitoringSchedules, the last executions from
ListMonitoringExecutions, and each finished execution's violations from the
`constraint_violations.json` in its processing job's output (DescribeProcessingJob's
ProcessingOutputConfig), the file `sagemaker.model_monitor` reads. No HTTP here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from modelhost.errors import ModelhostError
from modelhost.store.outputs import Locations, join

MAX_SCHEDULES = 10
MAX_EXECUTIONS = 5
MAX_VIOLATIONS = 20
_FINISHED = ("Completed", "CompletedWithViolations")

Operation = Callable[[dict[str, Any]], dict[str, Any]]


def source(
    operations: dict[str, Operation], locations: Locations
) -> Callable[[str], dict[str, Any]]:
    """The dashboard's `Sources.monitoring`: `summary` over the control plane's operations,
    reading violations files where they are (local or S3)."""

    def monitoring(endpoint: str) -> dict[str, Any]:
        try:
            return summary(operations, lambda url: locations.read(url, "Dashboard"), endpoint)
        except ModelhostError:
            return {"Schedules": [], "Executions": []}  # deleted since it was listed

    return monitoring


def summary(
    operations: dict[str, Operation], read: Callable[[str], bytes], endpoint: str
) -> dict[str, Any]:
    """{"Schedules": [...], "Executions": [... with "Violations"]}, newest execution first;
    both empty for an endpoint without schedules."""
    schedules = operations["ListMonitoringSchedules"](
        {"EndpointName": endpoint, "MaxResults": MAX_SCHEDULES}
    )["MonitoringScheduleSummaries"]
    if not schedules:
        return {"Schedules": [], "Executions": []}
    executions = operations["ListMonitoringExecutions"](
        {
            "EndpointName": endpoint,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": MAX_EXECUTIONS,
        }
    )["MonitoringExecutionSummaries"]
    return {
        "Schedules": [_schedule(s) for s in schedules],
        "Executions": [_execution(operations, read, e) for e in executions],
    }


def _schedule(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("MonitoringScheduleName", "MonitoringScheduleStatus", "MonitoringType")
    return {k: s.get(k) for k in keys}


def _execution(
    operations: dict[str, Operation], read: Callable[[str], bytes], e: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "MonitoringScheduleName": e.get("MonitoringScheduleName"),
        "MonitoringType": e.get("MonitoringType"),
        "MonitoringExecutionStatus": e.get("MonitoringExecutionStatus"),
        "ScheduledTime": _epoch(e.get("ScheduledTime")),
        "LastModifiedTime": _epoch(e.get("LastModifiedTime")),
        "FailureReason": e.get("FailureReason"),
        "Violations": [],
    }
    arn = e.get("ProcessingJobArn")
    if arn and out["MonitoringExecutionStatus"] in _FINISHED:
        try:
            out["Violations"] = violations(operations, read, arn.rsplit("/", 1)[-1])
        except (ModelhostError, ValueError) as exc:
            out["ViolationsError"] = str(exc)[:300]
    return out


def violations(
    operations: dict[str, Operation], read: Callable[[str], bytes], job_name: str
) -> list[dict[str, Any]]:
    """The first MAX_VIOLATIONS of the job's constraint_violations.json (data quality's
    `feature_name`, model quality's `metric_name`, attribution's both)."""
    job = operations["DescribeProcessingJob"]({"ProcessingJobName": job_name})
    outputs = (job.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    if not outputs:
        return []
    uri = outputs[0]["S3Output"]["S3Uri"]
    doc = json.loads(read(join(uri, "constraint_violations.json")))
    found = (doc.get("violations") or []) if isinstance(doc, dict) else []
    return [
        {
            "Feature": v.get("feature_name") or v.get("metric_name"),
            "CheckType": v.get("constraint_check_type"),
            "Description": v.get("description"),
        }
        for v in found[:MAX_VIOLATIONS]
        if isinstance(v, dict)
    ]


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)
