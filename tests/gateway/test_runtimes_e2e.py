"""scikit-learn, script mode, custom attributes and timeouts through boto3 and the gateway."""

from __future__ import annotations

import json
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from botocore.exceptions import ClientError
from sklearn.tree import DecisionTreeClassifier

from modelhost.testing.churn import ChurnData, csv_rows
from modelhost.testing.server import ModelhostServer
from tests.support import FAST_ENV, XGBOOST_IMAGE, ChurnModel, deploy, instance_pids, unique

pytestmark = pytest.mark.integration

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"

ECHO_SCRIPT = """
import json
import time

import numpy as np
import xgboost as xgb


def model_fn(model_dir):
    booster = xgb.Booster()
    with open(f"{model_dir}/xgboost-model", "rb") as f:
        booster.load_model(bytearray(f.read()))
    return booster


def transform_fn(model, body, content_type, accept, context):
    if body.startswith("sleep"):
        time.sleep(float(body.split()[1]))
    rows = np.array([[float(v) for v in line.split(",")] for line in body.splitlines()])
    scores = model.inplace_predict(rows.astype(np.float32))
    context.response_custom_attributes = "echo=" + (context.custom_attributes or "")
    return json.dumps({"scores": [float(s) for s in scores]}), "application/json"
"""


def _tar_dir(directory: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return out


@pytest.fixture(scope="module")
def script_artifact(churn_model: ChurnModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("script-model")
    with tarfile.open(churn_model.artifact) as tar:
        tar.extractall(root / "model", filter="data")
    (root / "model" / "code").mkdir()
    (root / "model" / "code" / "inference.py").write_text(ECHO_SCRIPT)
    return _tar_dir(root / "model", root / "model.tar.gz")


def test_sklearn_model_matches_in_process(
    sm: Any, rt: Any, churn_data: ChurnData, tmp_path: Path
) -> None:
    tree = DecisionTreeClassifier(max_depth=4, random_state=0)
    clf = tree.fit(churn_data.X[:500], churn_data.y[:500])
    model_dir = tmp_path / "sk"
    model_dir.mkdir()
    joblib.dump(clf, model_dir / "model.joblib")
    name = unique("sklearn")
    deploy(sm, name, str(model_dir), image=SKLEARN_IMAGE)
    X = churn_data.X[:4]
    resp = rt.invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body="\n".join(csv_rows(X))
    )
    assert resp["ContentType"].startswith("application/json")
    assert json.loads(resp["Body"].read()) == clf.predict(X.astype(np.float64)).tolist()


def test_script_mode_with_custom_attributes(
    sm: Any, rt: Any, churn_model: ChurnModel, script_artifact: Path
) -> None:
    name = unique("script")
    deploy(sm, name, str(script_artifact), image=XGBOOST_IMAGE)
    X = churn_model.data.X[:3]
    resp = rt.invoke_endpoint(
        EndpointName=name,
        ContentType="text/csv",
        Body="\n".join(csv_rows(X)),
        CustomAttributes="trace=42",
        InferenceId="inf-1",
    )
    assert resp["CustomAttributes"] == "echo=trace=42"
    assert resp["ContentType"] == "application/json"
    scores = json.loads(resp["Body"].read())["scores"]
    np.testing.assert_allclose(scores, churn_model.expected(X), atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    home = tmp_path_factory.mktemp("slow-home")
    env = {**FAST_ENV, "MODELHOST_INVOCATION_TIMEOUT_S": "1"}
    with ModelhostServer(home, env=env) as srv:
        yield srv


def test_invocation_timeout_is_model_error(
    slow_server: ModelhostServer, script_artifact: Path, churn_model: ChurnModel
) -> None:
    sm, rt = slow_server.clients(retries={"max_attempts": 1, "mode": "standard"})
    name = unique("slow")
    deploy(sm, name, str(script_artifact), image=XGBOOST_IMAGE)
    started = time.monotonic()
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="sleep 2")
    assert time.monotonic() - started < 1.9
    resp = exc.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert resp["Error"]["Code"] == "ModelError"
    assert resp["OriginalStatusCode"] == 0
    assert "timed out" in resp["Error"]["Message"]
    # The endpoint answers again once the slow call is over (the instance has one worker,
    # so calls queue behind it meanwhile, as in a one-worker SageMaker container).
    # Waiting on that condition, not a fixed time: a call queued behind it times out too.
    row = csv_rows(churn_model.data.X[:1])[0]
    deadline = time.monotonic() + 30
    while True:
        try:
            out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
            break
        except ClientError as err:
            if "timed out" not in err.response["Error"]["Message"]:
                raise
            assert time.monotonic() < deadline, "the endpoint never answered again"
    assert json.loads(out["Body"].read())["scores"]


def test_kill_9_of_the_gateway_leaves_no_instances_and_restarts(
    tmp_path: Path, churn_model: ChurnModel
) -> None:
    srv = ModelhostServer(tmp_path / "home", env=FAST_ENV).start()
    try:
        sm, rt = srv.clients()
        name = unique("gwkill")
        deploy(sm, name, str(churn_model.artifact), instances=2)
        assert len(instance_pids(srv.home, name)) == 2
        assert srv.proc is not None
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(10)
        srv.proc = None
        deadline = time.monotonic() + 10
        while instance_pids(srv.home, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert instance_pids(srv.home, name) == set(), "orphaned instances"
        srv.start()
        sm, rt = srv.clients()
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
        )
        row = csv_rows(churn_model.data.X[:1])[0]
        deadline = time.monotonic() + 30
        while True:
            try:
                out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
                break
            except ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        expected = float(churn_model.expected(churn_model.data.X[:1])[0])
        assert abs(float(out["Body"].read()) - expected) <= 1e-6
    finally:
        srv.stop()
