"""Helpers for async inference tests: async endpoints as boto3 users create them, reading
output locations, a local webhook receiver and a script-mode model that sleeps."""

from __future__ import annotations

import datetime as dt
import json
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tests.support import XGBOOST_IMAGE

# Test settings: short leases so a killed gateway's requests are retried within seconds.
ASYNC_ENV = {
    "MODELHOST_ASYNC_LEASE_S": "3",
    "MODELHOST_ASYNC_HEARTBEAT_S": "0.5",
    "MODELHOST_ASYNC_POLL_INTERVAL_S": "0.1",
    "MODELHOST_ASYNC_WEBHOOK_ATTEMPTS": "3",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

SLOW_SCRIPT = """
import time


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    time.sleep(5)
    return [1.0]
"""


def slow_artifact(root: Path) -> Path:
    """A script-mode model whose every prediction takes 5 s."""
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "inference.py").write_text(SLOW_SCRIPT)
    artifact = root / "slow.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(code / "inference.py", arcname="code/inference.py")
    return artifact


def async_config(
    output: str,
    failure: str | None = None,
    per_instance: int | None = None,
    success_topic: str | None = None,
    error_topic: str | None = None,
    include: list[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"S3OutputPath": output}
    if failure:
        out["S3FailurePath"] = failure
    notes: dict[str, Any] = {}
    if success_topic:
        notes["SuccessTopic"] = success_topic
    if error_topic:
        notes["ErrorTopic"] = error_topic
    if include:
        notes["IncludeInferenceResponseIn"] = include
    if notes:
        out["NotificationConfig"] = notes
    config: dict[str, Any] = {"OutputConfig": out}
    if per_instance:
        config["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": per_instance}
    return config


def deploy_async(
    sm: Any, name: str, artifact: Path | str, config: dict[str, Any], instances: int = 1
) -> None:
    """create_model + create_endpoint_config(AsyncInferenceConfig) + create_endpoint, waited."""
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(artifact)},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": instances,
                "InstanceType": "ml.m5.large",
            }
        ],
        AsyncInferenceConfig=config,
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
    )


def local_path(location: str) -> Path:
    return (
        Path(unquote(urlparse(location).path)) if location.startswith("file://") else Path(location)
    )


class Webhook:
    """A local HTTP receiver: every POSTed JSON body lands in `received`."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.url = ""


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            hook.received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def metric_value(cw: Any, metric: str, dims: list[dict[str, str]], statistic: str = "Sum") -> float:
    """One statistic of an AWS/SageMaker metric over the last 10 minutes (CloudWatch API)."""
    now = dt.datetime.now(dt.UTC)
    points = cw.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName=metric,
        Dimensions=dims,
        StartTime=now - dt.timedelta(minutes=10),
        EndTime=now + dt.timedelta(minutes=1),
        Period=600,
        Statistics=[statistic],
    )["Datapoints"]
    values = [p[statistic] for p in points]
    return float(max(values) if statistic == "Maximum" and values else sum(values))


def scale_to_zero_policies(aas: Any, resource_id: str, target: float = 5.0) -> str:
    """SageMaker's scale-to-zero pair on a registered variant: target tracking on
    ApproximateBacklogSizePerInstance (scales in to 0 when the queue is empty) and a +1
    step policy for the HasBacklogWithoutCapacity alarm. The step policy's ARN."""
    endpoint = resource_id.split("/")[1]
    keys = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource_id,
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    aas.put_scaling_policy(
        PolicyName="backlog-per-instance",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": target,
            "CustomizedMetricSpecification": {
                "MetricName": "ApproximateBacklogSizePerInstance",
                "Namespace": "AWS/SageMaker",
                "Dimensions": [{"Name": "EndpointName", "Value": endpoint}],
                "Statistic": "Average",
            },
            "ScaleInCooldown": 600,
            "ScaleOutCooldown": 300,
        },
        **keys,
    )
    step = aas.put_scaling_policy(
        PolicyName="backlog-without-capacity",
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Average",
            "Cooldown": 300,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
        },
        **keys,
    )
    return str(step["PolicyARN"])


def backlog_alarm(cw: Any, endpoint: str, policy_arn: str, period_s: int = 1) -> None:
    """The AWS docs' alarm: HasBacklogWithoutCapacity >= 1 for 2 of 2 datapoints."""
    cw.put_metric_alarm(
        AlarmName=f"{endpoint}-has-backlog-without-capacity",
        Namespace="AWS/SageMaker",
        MetricName="HasBacklogWithoutCapacity",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
        Statistic="Average",
        Period=period_s,
        EvaluationPeriods=2,
        DatapointsToAlarm=2,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="missing",
        AlarmActions=[policy_arn],
    )
