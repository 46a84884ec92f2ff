"""Helpers for transform-job tests: job creation as SageMaker users write it, and waiting."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from typing import Any

from botocore.exceptions import WaiterError

from modelhost.testing.server import signed_call
from tests.support import unique


def transform(
    sm: Any,
    model: str,
    input_uri: str,
    output_uri: str,
    *,
    wait: bool = True,
    data_type: str = "S3Prefix",
    content_type: str = "text/csv",
    split: str = "Line",
    assemble: str = "Line",
    **extra: Any,
) -> dict[str, Any]:
    """CreateTransformJob as SageMaker users write it; waits with boto3's own waiter."""
    name = unique("tj")
    tin: dict[str, Any] = {
        "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": input_uri}},
        "ContentType": content_type,
        "SplitType": split,
    }
    if "CompressionType" in extra:
        tin["CompressionType"] = extra.pop("CompressionType")
    tout: dict[str, Any] = {"S3OutputPath": output_uri, "AssembleWith": assemble}
    if "Accept" in extra:
        tout["Accept"] = extra.pop("Accept")
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        TransformInput=tin,
        TransformOutput=tout,
        TransformResources={
            "InstanceType": "ml.m5.large",
            "InstanceCount": extra.pop("InstanceCount", 1),
        },
        **extra,
    )
    if wait:
        # The waiter raises on Failed, by design; the caller reads the status either way.
        with contextlib.suppress(WaiterError):
            sm.get_waiter("transform_job_completed_or_stopped").wait(
                TransformJobName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 600}
            )
    return dict(sm.describe_transform_job(TransformJobName=name))


def native(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    req = signed_call(
        url,
        "GET" if body is None else "POST",
        path,
        None if body is None else json.dumps(body).encode(),
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
    return result


def wait_for(predicate: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")
