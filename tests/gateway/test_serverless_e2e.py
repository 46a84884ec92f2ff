"""Serverless endpoints end to end: a real server, real instances, real boto3."""

from __future__ import annotations

import json
import os
import signal
import tarfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from modelhost.container.process import process_alive
from modelhost.testing.server import ModelhostServer
from tests.support import (
    FAST_ENV,
    XGBOOST_IMAGE,
    ChurnModel,
    cli,
    deploy,
    instance_pids,
    sdk_session,
    unique,
    zygote_pids,
)

pytestmark = pytest.mark.integration

# Blocks each request until the test says go, so requests overlap for as long as the
# test needs them to (no timing involved); each one leaves a file when it starts.
GATED_SCRIPT = """
import json, os, time, uuid


def input_fn(body, content_type):
    return json.loads(body)


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    gate = data["gate"]
    open(os.path.join(gate, "started-" + uuid.uuid4().hex), "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(gate, "go")) and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"ok": True}
"""

# Allocates what the request asks for: more than MemorySizeInMB fails.
HUNGRY_SCRIPT = """
import json


def input_fn(body, content_type):
    return json.loads(body)


def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"


def model_fn(model_dir):
    return None


def predict_fn(data, model):
    block = bytearray(int(data["mib"]) * 1024 * 1024)
    return {"allocated_mib": len(block) // (1024 * 1024)}
"""


def _script_artifact(root: Path, script: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "inference.py").write_text(script)
    artifact = root / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(root / "inference.py", arcname="code/inference.py")
    return artifact


def _deploy_serverless(
    sm: Any, name: str, artifact: Path, image: str | None, **serverless: int
) -> None:
    config = {"MemorySizeInMB": 1024, "MaxConcurrency": 2, **serverless}
    deploy(sm, name, str(artifact), image=image, serverless=config)


def _running(sm: Any, name: str) -> int:
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    return int(variant["CurrentInstanceCount"])


def _live_instances(home: Path, endpoint: str) -> set[int]:
    """Pids of the endpoint's instances still running (forked or spawned)."""
    return instance_pids(home, endpoint)


def _wait(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def serverless_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    home = tmp_path_factory.mktemp("serverless-home")
    env = {**FAST_ENV, "MODELHOST_SERVERLESS_IDLE_S": "2"}
    with ModelhostServer(home, env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def clients(serverless_server: ModelhostServer) -> tuple[Any, Any]:
    # No retries: botocore would retry a ThrottlingException on its own.
    return serverless_server.clients(retries={"max_attempts": 1, "mode": "standard"})


def test_answers_from_zero_and_goes_back_to_zero(
    serverless_server: ModelhostServer, clients: tuple[Any, Any], churn_model: ChurnModel
) -> None:
    sm, rt = clients
    name = unique("sls")
    _deploy_serverless(sm, name, churn_model.artifact, XGBOOST_IMAGE)
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
    assert variant["CurrentInstanceCount"] == 0 and "DesiredInstanceCount" not in variant
    assert not _live_instances(serverless_server.home, name)
    config = sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"][0]
    assert config["ServerlessConfig"] == {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
    listed = cli(serverless_server, "endpoints")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith(name))
    assert "AllTraffic: serverless 1024 MB, max 2 concurrent, 0 running" in line

    X = churn_model.data.X[:5]
    logs = serverless_server.home / "logs" / name
    for started in (1, 2):  # from zero, and from zero again after the idle timeout
        body = "\n".join(",".join(repr(float(v)) for v in row) for row in X)
        out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)
        got = np.array([float(v) for v in out["Body"].read().decode().replace(",", " ").split()])
        assert np.allclose(got, churn_model.expected(X), atol=1e-5)
        # One instance was started for the request (one log each); it may already be
        # stopping again on a slow machine, so its count is not asserted here.
        assert len(list(logs.rglob("i-*.log"))) == started
        _wait(lambda: _running(sm, name) == 0, "the idle instance to stop")
        _wait(lambda: not _live_instances(serverless_server.home, name), "the process to exit")

    # ProvisionedConcurrency through boto3: one instance is kept warm from now on.
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[
            {"VariantName": "AllTraffic", "ServerlessUpdateConfig": {"ProvisionedConcurrency": 1}}
        ],
    )
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"]["ProvisionedConcurrency"] == 1
    assert variant["CurrentInstanceCount"] == 1

    cloudwatch = serverless_server.client("cloudwatch")
    stats = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="ModelSetupTime",
        Dimensions=[
            {"Name": "EndpointName", "Value": name},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        StartTime=time.time() - 600,
        EndTime=time.time() + 60,
        Period=60,
        Statistics=["SampleCount"],
    )
    # Two cold starts and the warm instance's start (a replaced instance would add one).
    assert sum(p["SampleCount"] for p in stats["Datapoints"]) >= 3


def test_throttles_above_max_concurrency_and_answers_within_it(
    clients: tuple[Any, Any], tmp_path: Path
) -> None:
    sm, rt = clients
    name = unique("sls-gate")
    _deploy_serverless(sm, name, _script_artifact(tmp_path / "gated", GATED_SCRIPT), None)
    gate = tmp_path / "gate"
    gate.mkdir()
    body = json.dumps({"gate": str(gate)})
    answers: list[Any] = []

    def call() -> None:
        try:
            out = rt.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=body)
            answers.append(json.loads(out["Body"].read()))
        except ClientError as exc:  # pragma: no cover - reported by the assert below
            answers.append(exc.response["Error"])

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    _wait(lambda: len(list(gate.glob("started-*"))) == 2, "two requests in the model")
    with pytest.raises(ClientError) as caught:
        rt.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=body)
    error = caught.value.response
    assert error["Error"]["Code"] == "ThrottlingException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    (gate / "go").touch()
    for thread in threads:
        thread.join(timeout=120)
    assert answers == [{"ok": True}, {"ok": True}]


def test_a_model_over_its_memory_fails_cleanly_and_the_endpoint_stays_up(
    clients: tuple[Any, Any], tmp_path: Path
) -> None:
    sm, rt = clients
    name = unique("sls-mem")
    _deploy_serverless(sm, name, _script_artifact(tmp_path / "hungry", HUNGRY_SCRIPT), None)

    def ask(mib: int) -> Any:
        body = json.dumps({"mib": mib})
        out = rt.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=body)
        return json.loads(out["Body"].read())

    assert ask(16) == {"allocated_mib": 16}
    with pytest.raises(ClientError) as caught:
        ask(2048)  # twice MemorySizeInMB
    error = caught.value.response["Error"]
    assert error["Code"] == "ModelError"
    assert "ran out of memory" in error["Message"] and "1024 MiB" in error["Message"]
    assert ask(16) == {"allocated_mib": 16}


def test_a_killed_gateway_leaves_no_zygote_or_instance_behind(
    tmp_path: Path, churn_model: ChurnModel
) -> None:
    home = tmp_path / "home"
    with ModelhostServer(home, env={**FAST_ENV, "MODELHOST_SERVERLESS_IDLE_S": "600"}) as srv:
        sm, rt = srv.clients(retries={"max_attempts": 1, "mode": "standard"})
        name = unique("sls-kill")
        _deploy_serverless(sm, name, churn_model.artifact, XGBOOST_IMAGE)
        body = ",".join(repr(float(v)) for v in churn_model.data.X[0])
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)
        instances = _live_instances(home, name)
        zygotes = zygote_pids(home)
        assert len(instances) == 1 and len(zygotes) == 1
        assert srv.proc is not None
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait()
        _wait(lambda: not any(process_alive(p) for p in instances | zygotes), "orphans to exit")


def test_the_sagemaker_sdk_deploys_with_a_serverless_inference_config(
    serverless_server: ModelhostServer,
    churn_model: ChurnModel,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The seeds' `ServerlessInferenceConfig` cell, pointed at modelhost by environment
    variables only (as `modelhost credentials` exports them)."""
    key_id, secret = serverless_server.credentials
    for variable, value in {
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SAGEMAKER": serverless_server.url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": serverless_server.url,
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        # No ~/.aws files of whoever runs the tests.
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }.items():
        monkeypatch.setenv(variable, value)
    # A notebook starts with no default boto3 session; in this worker an earlier test's
    # boto3.client() may have cached another server's keys in one, which the SDK would reuse.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sagemaker.model import Model
        from sagemaker.predictor import Predictor
        from sagemaker.serializers import CSVSerializer
        from sagemaker.serverless import ServerlessInferenceConfig

        model = Model(
            image_uri=XGBOOST_IMAGE,
            model_data=str(churn_model.artifact),
            role="arn:aws:iam::123456789012:role/modelhost",
            predictor_cls=Predictor,
            sagemaker_session=sdk_session(),
        )
        predictor = model.deploy(
            serverless_inference_config=ServerlessInferenceConfig(
                memory_size_in_mb=2048, max_concurrency=5
            ),
            endpoint_name=unique("sls-sdk"),
            serializer=CSVSerializer(),
        )
        X = churn_model.data.X[:2]
        got = np.array([float(v) for v in predictor.predict(X).decode().split(",")])
    assert np.allclose(got, churn_model.expected(X), atol=1e-5)
