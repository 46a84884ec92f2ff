"""Monitor a deployed model, as the "setting monitors for deployment" lab does, with boto3.

    python examples/monitor/run.py [--endpoint-url http://127.0.0.1:8080]

1. Train the churn XGBoost model and deploy it with DataCaptureConfig (100 %).
2. Baseline: a processing job with the model-monitor analyzer image over the training
   data (CSV with a header, the label first), writing statistics.json and constraints.json.
3. Send normal traffic, then traffic whose `Day Mins` is shifted, and run a one-time
   (`NOW`) data-quality monitoring schedule over each; print the executions' violations.
4. Create the hourly schedule the lab ends with, and show it.

Without --endpoint-url it starts its own modelhost (and stops it). Exit status 0 when the
drifted run reports `baseline_drift_check` for `Day Mins` and the normal run does not.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.testing import monitor
from modelhost.testing.churn import (
    FEATURE_NAMES,
    csv_rows,
    make_churn,
    train_xgboost,
    write_xgboost_artifact,
)
from modelhost.testing.server import ModelhostServer, boto3_client, boto3_clients

XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = monitor.ROLE


def deploy(sm: Any, name: str, artifact: Path, capture: Path) -> None:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": XGBOOST, "ModelDataUrl": str(artifact)},
        ExecutionRoleArn=ROLE,
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": str(capture),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
        },
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
    )


def run_now(sm: Any, schedule: str, definition: dict[str, Any]) -> list[dict[str, str]]:
    """A one-time schedule over the last hour of captures; its execution's violations."""
    run = monitor.run_now(sm, schedule, definition)
    print(f"  execution: {run['MonitoringExecutionStatus']}")
    _, violations = monitor.execution_outputs(sm, run)
    for v in violations:
        print(f"  {v['constraint_check_type']:<24} {v['feature_name']}")
    sm.delete_monitoring_schedule(MonitoringScheduleName=schedule)
    return violations


def send(rt: Any, endpoint: str, X: np.ndarray) -> None:
    rows = csv_rows(X)
    for i in range(0, len(rows), 25):
        rt.invoke_endpoint(
            EndpointName=endpoint, ContentType="text/csv", Body="\n".join(rows[i : i + 25])
        )


def wait_captures(capture: Path, endpoint: str, requests: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = sum(len(p.read_text().splitlines()) for p in (capture / endpoint).rglob("*.jsonl"))
        if lines >= requests:
            return
        time.sleep(0.2)
    raise SystemExit("captures did not arrive")


def lab(url: str, work: Path) -> int:
    sm, rt = boto3_clients(url)
    train = make_churn(3000, seed=0)
    artifact = write_xgboost_artifact(train_xgboost(train, num_round=50), work / "model")
    data = work / "baseline-data"
    data.mkdir()
    header = ",".join(["Churn", *FEATURE_NAMES])
    rows = [f"{int(y)},{row}" for y, row in zip(train.y, csv_rows(train.X), strict=True)]
    (data / "train.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    name = f"monitor-lab-{uuid.uuid4().hex[:6]}"
    capture, reports, baseline = work / "capture", work / "reports", work / "baseline"

    def definition() -> dict[str, Any]:
        return monitor.job_definition(name, str(baseline), str(reports))

    print("1. deploying with data capture")
    deploy(sm, name, artifact, capture)
    try:
        print("2. baseline from the training data")
        desc = monitor.suggest_baseline(sm, f"{name}-baseline", str(data), str(baseline))
        if desc["ProcessingJobStatus"] != "Completed":
            raise SystemExit(f"baseline failed: {desc.get('FailureReason')}")
        constraints = json.loads((baseline / "constraints.json").read_text())
        print(f"  constraints.json: {len(constraints['features'])} features")
        print("3a. normal traffic, then a NOW monitoring run")
        send(rt, name, make_churn(500, seed=11).X)
        wait_captures(capture, name, 20)
        normal = run_now(sm, f"{name}-normal", definition())
        print("3b. traffic with Day Mins shifted by +80, then another run")
        shifted = make_churn(500, seed=12).X.copy()
        shifted[:, FEATURE_NAMES.index("Day Mins")] += 80.0
        send(rt, name, shifted)
        wait_captures(capture, name, 40)
        drifted = run_now(sm, f"{name}-drift", definition())
        print("4. the hourly schedule")
        sm.create_monitoring_schedule(
            MonitoringScheduleName=f"{name}-hourly",
            MonitoringScheduleConfig={
                "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                "MonitoringJobDefinition": definition(),
                "MonitoringType": "DataQuality",
            },
        )
        desc = sm.describe_monitoring_schedule(MonitoringScheduleName=f"{name}-hourly")
        print(f"  {desc['MonitoringScheduleName']}: {desc['MonitoringScheduleStatus']}")
        cw = boto3_client("cloudwatch", url)
        metrics = cw.list_metrics(Namespace="aws/sagemaker/Endpoints/data-metrics")["Metrics"]
        print(f"  CloudWatch: {len(metrics)} data-quality metrics published")
        sm.delete_monitoring_schedule(MonitoringScheduleName=f"{name}-hourly")
    finally:
        sm.delete_endpoint(EndpointName=name)
    day_drift = ("Day Mins", "baseline_drift_check")
    found = {(v["feature_name"], v["constraint_check_type"]) for v in drifted}
    quiet = {(v["feature_name"], v["constraint_check_type"]) for v in normal}
    ok = day_drift in found and day_drift not in quiet
    print("drift found in the shifted traffic only" if ok else "UNEXPECTED violations")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--endpoint-url", help="a running modelhost; default: start one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.endpoint_url:
            return lab(args.endpoint_url, work)
        env = {"MODELHOST_CAPTURE_FLUSH_INTERVAL_S": "0.2"}
        with ModelhostServer(work / "home", env=env) as server:
            return lab(server.url, work)


if __name__ == "__main__":
    sys.exit(main())
