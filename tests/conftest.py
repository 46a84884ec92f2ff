"""Shared fixtures: a trained churn model and real `modelhost serve` processes."""

from __future__ import annotations

import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.testing.churn import ChurnData, make_churn, train_xgboost, write_xgboost_artifact
from modelhost.testing.server import ModelhostServer

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"

# Fast control loops so tests do not wait on timers.
FAST_ENV = {
    "MODELHOST_HEALTH_CHECK_INTERVAL_S": "0.3",
    "MODELHOST_RECONCILE_INTERVAL_S": "0.2",
    "MODELHOST_SHUTDOWN_GRACE_S": "5",
    "MODELHOST_INSTANCE_STARTUP_TIMEOUT_S": "60",
}


@dataclass
class ChurnModel:
    data: ChurnData
    booster: Any
    artifact: Path

    def expected(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(X))


@pytest.fixture(scope="session")
def churn_data() -> ChurnData:
    return make_churn(n_rows=2000, seed=7)


@pytest.fixture(scope="session")
def churn_model(churn_data: ChurnData, tmp_path_factory: pytest.TempPathFactory) -> ChurnModel:
    booster = train_xgboost(churn_data, num_round=100, seed=0)
    out = tmp_path_factory.mktemp("churn-model")
    return ChurnModel(churn_data, booster, write_xgboost_artifact(booster, out))


@pytest.fixture(scope="session")
def churn_model_small(
    churn_data: ChurnData, tmp_path_factory: pytest.TempPathFactory
) -> ChurnModel:
    """A second, different model (fewer trees) for update tests."""
    booster = train_xgboost(churn_data, num_round=10, seed=1)
    out = tmp_path_factory.mktemp("churn-model-small")
    return ChurnModel(churn_data, booster, write_xgboost_artifact(booster, out))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    """One server shared by tests that use their own endpoint names."""
    home = tmp_path_factory.mktemp("modelhost-home")
    with ModelhostServer(home, env=FAST_ENV) as srv:
        yield srv


@pytest.fixture(scope="session")
def clients(server: ModelhostServer) -> tuple[Any, Any]:
    return server.clients(retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture()
def sm(clients: tuple[Any, Any]) -> Any:
    return clients[0]


@pytest.fixture()
def rt(clients: tuple[Any, Any]) -> Any:
    return clients[1]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def deploy(
    sm: Any,
    name: str,
    artifact: str,
    *,
    instances: int = 1,
    image: str | None = XGBOOST_IMAGE,
    wait: bool = True,
    environment: dict[str, str] | None = None,
) -> None:
    """create_model + create_endpoint_config + create_endpoint, as SageMaker users write it."""
    container: dict[str, Any] = {"ModelDataUrl": artifact}
    if image:
        container["Image"] = image
    if environment:
        container["Environment"] = environment
    sm.create_model(
        ModelName=name,
        PrimaryContainer=container,
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
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )


FAILING_SCRIPT = """
def model_fn(model_dir):
    return None


def predict_fn(data, model):
    raise RuntimeError("green is broken on purpose")
"""


@pytest.fixture(scope="session")
def failing_artifact(tmp_path_factory: pytest.TempPathFactory, churn_model: ChurnModel) -> Path:
    root = tmp_path_factory.mktemp("failing")
    code = root / "code"
    code.mkdir()
    (code / "inference.py").write_text(FAILING_SCRIPT)
    artifact = root / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(code / "inference.py", arcname="code/inference.py")
    return artifact
