"""Script mode with code/requirements.txt, script errors, and XGBoost selectable outputs,
through boto3 and a real gateway.

The server here is our own: its instances need `MH_INSTANCE_PACKAGES_DIR` (where
requirements install) and `PIP_NO_INDEX=1` (so pip never reaches the network; the
requirements name a wheel shipped in the model's code/ directory).
"""

from __future__ import annotations

import json
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError, WaiterError

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.frameworks.fw_support import PKG, write_wheel
from tests.support import FAST_ENV, XGBOOST_IMAGE, ChurnModel, deploy, unique

pytestmark = pytest.mark.integration

SCRIPT = f"""
import json

import numpy as np

import {PKG}


# No model_fn: the XGBoost runtime loads xgboost-model and predict_fn gets the Booster.
def predict_fn(data, model):
    if np.isnan(data).all():
        raise ValueError("every feature is missing: refusing to predict")
    return model.inplace_predict(data)


def output_fn(prediction, accept):
    body = {{"package": {PKG}.VALUE, "scores": prediction.tolist()}}
    return json.dumps(body), "application/json"
"""


@pytest.fixture(scope="module")
def pkg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    home = tmp_path_factory.mktemp("script-home")
    env = {**FAST_ENV, "MH_INSTANCE_PACKAGES_DIR": str(home / "packages"), "PIP_NO_INDEX": "1"}
    with ModelhostServer(home, env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def clients(pkg_server: ModelhostServer) -> tuple[Any, Any]:
    return pkg_server.clients(retries={"max_attempts": 1, "mode": "standard"})


def _artifact(churn_model: ChurnModel, root: Path, requirements: str) -> Path:
    """The churn model plus code/inference.py, the wheel and requirements.txt."""
    model = root / "model"
    with tarfile.open(churn_model.artifact) as tar:
        tar.extractall(model, filter="data")
    code = model / "code"
    code.mkdir()
    (code / "inference.py").write_text(SCRIPT)
    (code / "requirements.txt").write_text(requirements)
    write_wheel(code)
    out = root / "model.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(model.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model)), recursive=False)
    return out


def _model_error(exc: pytest.ExceptionInfo[ClientError]) -> dict[str, Any]:
    resp = exc.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert resp["Error"]["Code"] == "ModelError"
    return resp


def test_requirements_installed_once_and_script_errors_are_model_errors(
    clients: tuple[Any, Any],
    pkg_server: ModelhostServer,
    churn_model: ChurnModel,
    tmp_path: Path,
) -> None:
    sm, rt = clients
    artifact = _artifact(churn_model, tmp_path, f"./{PKG}-0.1-py3-none-any.whl\n")
    name = unique("reqs")
    # Two instances start together: one installs, the other waits and reuses it.
    deploy(sm, name, str(artifact), image=XGBOOST_IMAGE, instances=2)
    X = churn_model.data.X[:3]
    for _ in range(4):  # reaches both instances
        out = rt.invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Body="\n".join(csv_rows(X))
        )
        assert out["ContentType"] == "application/json"
        answer = json.loads(out["Body"].read())
        assert answer["package"] == 42
        np.testing.assert_allclose(answer["scores"], churn_model.expected(X), atol=1e-6, rtol=0)
    packages = pkg_server.home / "packages"
    installed = [p for p in packages.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(installed) == 1, installed
    assert (installed[0] / PKG / "__init__.py").is_file()

    # predict_fn raises: ModelError 424, the script's message in OriginalMessage.
    n_features = churn_model.data.X.shape[1]
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="," * (n_features - 1))
    resp = _model_error(exc)
    assert resp["OriginalStatusCode"] == 500
    assert "ValueError: every feature is missing: refusing to predict" in resp["OriginalMessage"]
    assert "predict_fn" in resp["OriginalMessage"]  # the traceback, for the script's author


def test_bad_requirement_fails_the_endpoint_with_pips_error(
    clients: tuple[Any, Any], churn_model: ChurnModel, tmp_path: Path
) -> None:
    sm, _ = clients
    artifact = _artifact(churn_model, tmp_path, "nonexistent-package-xyz==1.0\n")
    name = unique("badreq")
    deploy(sm, name, str(artifact), image=XGBOOST_IMAGE, wait=False)
    with pytest.raises(WaiterError):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "Failed"
    reason = desc["FailureReason"]
    assert "code/requirements.txt failed to install" in reason
    assert "No matching distribution found for nonexistent-package-xyz==1.0" in reason


def _deploy_with_env(sm: Any, name: str, artifact: Path, environment: dict[str, str]) -> None:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": XGBOOST_IMAGE,
            "ModelDataUrl": str(artifact),
            "Environment": environment,
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
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
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )


def test_selectable_outputs_through_boto3(
    clients: tuple[Any, Any], churn_model: ChurnModel
) -> None:
    sm, rt = clients
    name = unique("select")
    keys = "predicted_label,probability,probabilities,predicted_score"
    _deploy_with_env(sm, name, churn_model.artifact, {"SAGEMAKER_INFERENCE_OUTPUT": keys})
    X = churn_model.data.X[:3]
    p = churn_model.expected(X)
    body = "\n".join(csv_rows(X))

    def invoke(accept: str | None) -> tuple[str, str]:
        extra = {"Accept": accept} if accept else {}
        out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body, **extra)
        return out["ContentType"], out["Body"].read().decode()

    media, text = invoke("application/json")
    assert media == "application/json"
    records = json.loads(text)["predictions"]
    for record, score in zip(records, p.tolist(), strict=True):
        assert record["predicted_label"] == int(score > 0.5)
        assert record["probability"] == score  # the float32 score, exactly
        assert record["probabilities"] == [1.0 - score, score]
        assert math.isnan(record["predicted_score"])  # not a key of binary:logistic

    media, text = invoke("application/jsonlines")
    assert media == "application/jsonlines"
    assert [json.loads(line)["probability"] for line in text.splitlines()] == p.tolist()

    media, text = invoke(None)  # the container's default: text/csv
    assert media == "text/csv"
    expected_lines = [f'{int(s > 0.5)},{s},"{[1.0 - s, s]}",nan' for s in p.tolist()]
    assert text.split("\n") == expected_lines
