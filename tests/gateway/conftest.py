"""Fixtures shared by the gateway's end-to-end tests."""

from __future__ import annotations

import pytest

from modelhost.testing.server import ModelhostServer
from tests.support import XGBOOST_IMAGE, ChurnModel, unique


@pytest.fixture(scope="module")
def two_variants(
    server: ModelhostServer, churn_model: ChurnModel, churn_model_small: ChurnModel
) -> str:
    sm, _ = server.clients()
    name = unique("ab")
    for suffix, model in (("a", churn_model), ("b", churn_model_small)):
        sm.create_model(
            ModelName=f"{name}-{suffix}",
            PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(model.artifact)},
        )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "A",
                "ModelName": f"{name}-a",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1,
            },
            {
                "VariantName": "B",
                "ModelName": f"{name}-b",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1,
            },
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    return name
