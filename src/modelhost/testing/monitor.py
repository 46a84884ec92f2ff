"""Model Monitor steps through boto3, as the SageMaker SDK sends them: a baseline processing
job of the analyzer image, a data-quality job definition, a one-time (`NOW`) schedule, its
execution and the execution's outputs. Shared by examples/monitor and the tests, so both
run the same requests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

ANALYZER_IMAGE = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
ROLE = "arn:aws:iam::123456789012:role/modelhost"
RESOURCES = {
    "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 20}
}
TERMINAL = ("Completed", "CompletedWithViolations", "Failed", "Stopped")
NOW_LAST_HOUR = {
    "ScheduleExpression": "NOW",
    "DataAnalysisStartTime": "-PT1H",
    "DataAnalysisEndTime": "-PT0H",
}


def suggest_baseline(
    sm: Any, name: str, data: str, out: str, timeout_s: float = 120.0
) -> dict[str, Any]:
    """What DefaultModelMonitor.suggest_baseline sends for a CSV with a header and the label
    first; waits for the job and returns DescribeProcessingJob's answer."""
    sm.create_processing_job(
        ProcessingJobName=name,
        AppSpecification={"ImageUri": ANALYZER_IMAGE},
        Environment={
            "dataset_format": json.dumps(
                {"csv": {"header": True, "output_columns_position": "START"}}
            ),
            "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
            "output_path": "/opt/ml/processing/output",
            "publish_cloudwatch_metrics": "Disabled",
        },
        ProcessingInputs=[
            {
                "InputName": "baseline_dataset_input",
                "S3Input": {
                    "S3Uri": data,
                    "LocalPath": "/opt/ml/processing/input/baseline_dataset_input",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        ProcessingOutputConfig={
            "Outputs": [
                {
                    "OutputName": "monitoring_output",
                    "S3Output": {
                        "S3Uri": out,
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        ProcessingResources=RESOURCES,
        RoleArn=ROLE,
    )
    return wait_processing_job(sm, name, timeout_s)


def wait_processing_job(sm: Any, name: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """DescribeProcessingJob once the job has ended (or as it is at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        desc: dict[str, Any] = sm.describe_processing_job(ProcessingJobName=name)
        if desc["ProcessingJobStatus"] in TERMINAL or time.monotonic() > deadline:
            return desc
        time.sleep(0.3)


def job_definition(endpoint: str, baseline: str, reports: str) -> dict[str, Any]:
    """A data-quality MonitoringJobDefinition of `endpoint` against the baseline folder's
    constraints.json and statistics.json, writing under `reports`."""
    return {
        "BaselineConfig": {
            "ConstraintsResource": {"S3Uri": f"{baseline.rstrip('/')}/constraints.json"},
            "StatisticsResource": {"S3Uri": f"{baseline.rstrip('/')}/statistics.json"},
        },
        "MonitoringInputs": [
            {
                "EndpointInput": {
                    "EndpointName": endpoint,
                    "LocalPath": "/opt/ml/processing/input/endpoint",
                }
            }
        ],
        "MonitoringOutputConfig": {
            "MonitoringOutputs": [
                {"S3Output": {"S3Uri": reports, "LocalPath": "/opt/ml/processing/output"}}
            ]
        },
        "MonitoringResources": RESOURCES,
        "MonitoringAppSpecification": {"ImageUri": ANALYZER_IMAGE},
        "RoleArn": ROLE,
    }


def wait_execution(sm: Any, schedule: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """The schedule's first finished execution (ListMonitoringExecutions' summary)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = sm.list_monitoring_executions(MonitoringScheduleName=schedule)[
            "MonitoringExecutionSummaries"
        ]
        done = [e for e in found if e["MonitoringExecutionStatus"] in TERMINAL]
        if done:
            return dict(done[0])
        if time.monotonic() > deadline:
            raise TimeoutError(f"no execution of {schedule} finished: {found}")
        time.sleep(0.3)


def execution_outputs(
    sm: Any, execution: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The execution's statistics.json and constraint_violations.json's violations (local
    output folders)."""
    job = sm.describe_processing_job(ProcessingJobName=execution["ProcessingJobArn"].split("/")[-1])
    folder = Path(job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"])
    stats = json.loads((folder / "statistics.json").read_text())
    violations = json.loads((folder / "constraint_violations.json").read_text())["violations"]
    return stats, violations


def run_now(sm: Any, schedule: str, definition: dict[str, Any]) -> dict[str, Any]:
    """A one-time data-quality schedule over the last hour of captures; its finished
    execution."""
    sm.create_monitoring_schedule(
        MonitoringScheduleName=schedule,
        MonitoringScheduleConfig={
            "ScheduleConfig": NOW_LAST_HOUR,
            "MonitoringJobDefinition": definition,
            "MonitoringType": "DataQuality",
        },
    )
    return wait_execution(sm, schedule)
