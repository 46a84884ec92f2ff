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
    return Path(unquote(urlparse(location).path)) if location.startswith("file://") else Path(
        location
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


def metric_value(
    cw: Any, metric: str, dims: list[dict[str, str]], statistic: str = "Sum"
) -> float:
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
