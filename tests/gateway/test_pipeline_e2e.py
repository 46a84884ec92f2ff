"""Serial inference pipelines end to end: the example pipeline equals its steps by hand.

Real `modelhost serve`, real container processes, boto3 clients.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from modelhost.testing.server import ModelhostServer
from tests.gateway.support import (
    create_endpoint,
    csv_floats,
    invoke_error,
    metrics_text,
    wait_in_service,
)
from tests.support import unique

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline"


def _example() -> ModuleType:
    """examples/pipeline/run.py as a module (its build() makes both artifacts)."""
    spec = importlib.util.spec_from_file_location("pipeline_example", EXAMPLE / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_serial_pipeline_equals_its_steps_run_by_hand(
    server: ModelhostServer, rt: Any, tmp_path: Path
) -> None:
    example = _example()
    pre_artifact, xgb_artifact, body, expected = example.build(tmp_path)
    containers = [
        {
            "ContainerHostname": "preprocess",
            "Image": example.SKLEARN_IMAGE,
            "ModelDataUrl": str(pre_artifact),
        },
        {
            "ContainerHostname": "xgboost",
            "Image": example.XGBOOST_IMAGE,
            "ModelDataUrl": str(xgb_artifact),
        },
    ]
    sm, _ = server.clients()
    serial, direct = unique("pipeline"), unique("steps")
    create_endpoint(sm, serial, containers, "Serial")
    create_endpoint(sm, direct, containers, "Direct")
    wait_in_service(sm, serial)
    wait_in_service(sm, direct)

    # The pipeline, in one call: raw CSV in, XGBoost's JSON out (the client's Accept).
    out = rt.invoke_endpoint(
        EndpointName=serial, ContentType="text/csv", Accept="application/json", Body=body
    )
    assert out["ContentType"] == "application/json"
    pipeline = [p["score"] for p in json.loads(out["Body"].read())["predictions"]]

    # The same steps by hand, one container at a time, the output of one fed to the next.
    step1 = rt.invoke_endpoint(
        EndpointName=direct, ContentType="text/csv", Body=body, TargetContainerHostname="preprocess"
    )
    assert step1["ContentType"] == "text/csv"
    features = step1["Body"].read()
    assert len(features.decode().splitlines()[0].split(",")) == 69
    step2 = rt.invoke_endpoint(
        EndpointName=direct,
        ContentType=step1["ContentType"],
        Accept="application/json",
        Body=features,
        TargetContainerHostname="xgboost",
    )
    by_hand = [p["score"] for p in json.loads(step2["Body"].read())["predictions"]]
    assert pipeline == by_hand
    np.testing.assert_allclose(pipeline, expected, atol=1e-6)

    # CSV end to end when the client asks for it.
    csv_out = rt.invoke_endpoint(
        EndpointName=serial, ContentType="text/csv", Accept="text/csv", Body=body
    )
    assert csv_out["ContentType"] == "text/csv"
    np.testing.assert_allclose(csv_floats(csv_out["Body"].read()), expected, atol=1e-6)

    # Per-container latency for both steps of the pipeline.
    text = metrics_text(server)
    for host in ("preprocess", "xgboost"):
        assert f'ContainerLatency_count{{ContainerName="{host}",EndpointName="{serial}"' in text

    # A pipeline is not a direct-invocation endpoint; a failing step names itself.
    code, message = invoke_error(
        rt,
        EndpointName=serial,
        ContentType="text/csv",
        Body=body,
        TargetContainerHostname="xgboost",
    )
    assert code == "ValidationError" and "not configured for direct invocation" in message
    code, message = invoke_error(rt, EndpointName=serial, ContentType="text/csv", Body=b"TX,1\n")
    assert code == "ModelError" and "from preprocess" in message
