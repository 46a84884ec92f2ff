"""Fixtures for transform-job tests: a model registered once per session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import XGBOOST_IMAGE, ChurnModel, unique


@pytest.fixture(scope="session")
def churn_model_name(clients: tuple[Any, Any], churn_model: ChurnModel) -> str:
    name = unique("batch-churn")
    clients[0].create_model(
        ModelName=name,
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(churn_model.artifact)},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
    )
    return name
