"""The seed's boto3 code, unchanged but for endpoint_url, against a real server."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError, WaiterError

from modelhost.testing.churn import csv_body, csv_rows
from modelhost.testing.server import ModelhostServer
from tests.support import ChurnModel, deploy, unique

pytestmark = pytest.mark.integration


def test_invoke_returns_in_process_predictions(sm: Any, rt: Any, churn_model: ChurnModel) -> None:
    name = unique("churn")
    deploy(sm, name, f"file://{churn_model.artifact}")
    X = churn_model.data.X[:25]
    expected = churn_model.expected(X)
    for row, want in zip(csv_rows(X), expected, strict=True):
        resp = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
        assert resp["InvokedProductionVariant"] == "AllTraffic"
        assert resp["ContentType"] == "text/csv"
        got = float(resp["Body"].read().decode())
        assert abs(got - float(want)) <= 1e-6
    # One body with many rows: the scores comma-joined on one line, as SageMaker does.
    resp = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=csv_body(X))
    got_rows = np.array([float(v) for v in resp["Body"].read().decode().split(",")])
    np.testing.assert_allclose(got_rows, expected, atol=1e-6, rtol=0)
    # JSON out.
    resp = rt.invoke_endpoint(
        EndpointName=name,
        ContentType="text/csv",
        Accept="application/json",
        Body=csv_rows(X[:1])[0],
    )
    assert resp["ContentType"].startswith("application/json")
    score = json.loads(resp["Body"].read())["predictions"][0]["score"]
    assert abs(score - float(expected[0])) <= 1e-6
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
    )


def test_describe_and_list_shapes(sm: Any, churn_model: ChurnModel) -> None:
    name = unique("Shape-Case")
    deploy(sm, name, str(churn_model.artifact))
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointArn"] == (
        f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name.lower()}"
    )
    assert desc["EndpointConfigName"] == name
    variant = desc["ProductionVariants"][0]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["CurrentInstanceCount"] == 1
    assert variant["CurrentWeight"] == 1.0
    assert desc["CreationTime"].tzinfo is not None
    model = sm.describe_model(ModelName=name)
    assert model["PrimaryContainer"]["ModelDataUrl"] == str(churn_model.artifact)
    assert model["ModelArn"].endswith(f"model/{name.lower()}")
    cfg = sm.describe_endpoint_config(EndpointConfigName=name)
    assert cfg["ProductionVariants"][0]["InitialInstanceCount"] == 1
    listed = sm.list_endpoints(NameContains=name.lower(), StatusEquals="InService")
    assert [e["EndpointName"] for e in listed["Endpoints"]] == [name]
    assert sm.list_endpoints(NameContains=name, StatusEquals="Failed")["Endpoints"] == []
    assert any(m["ModelName"] == name for m in sm.list_models(NameContains=name)["Models"])
    assert [
        c["EndpointConfigName"]
        for c in sm.list_endpoint_configs(NameContains=name)["EndpointConfigs"]
    ] == [name]


def test_list_pagination_with_paginator(sm: Any) -> None:
    prefix = unique("pg")
    for i in range(5):
        sm.create_model(
            ModelName=f"{prefix}-{i}",
            PrimaryContainer={"Image": "xgboost", "ModelDataUrl": "/nonexistent"},
        )
    pages = list(
        sm.get_paginator("list_models").paginate(
            NameContains=prefix,
            SortBy="Name",
            SortOrder="Ascending",
            PaginationConfig={"PageSize": 2},
        )
    )
    assert [len(p["Models"]) for p in pages] == [2, 2, 1]
    names = [m["ModelName"] for p in pages for m in p["Models"]]
    assert names == [f"{prefix}-{i}" for i in range(5)]


def test_missing_resources_answer_like_sagemaker(sm: Any) -> None:
    with pytest.raises(ClientError) as err:
        sm.describe_endpoint(EndpointName="does-not-exist")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert 'Could not find endpoint "arn:aws:sagemaker' in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        sm.delete_model(ModelName="does-not-exist")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    # endpoint_deleted succeeds at once on a missing endpoint; endpoint_in_service fails.
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName="does-not-exist", WaiterConfig={"Delay": 0.1, "MaxAttempts": 2}
    )
    with pytest.raises(WaiterError):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="does-not-exist", WaiterConfig={"Delay": 0.1, "MaxAttempts": 2}
        )


def test_duplicate_create_is_validation_exception(sm: Any, churn_model: ChurnModel) -> None:
    name = unique("dup")
    sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(churn_model.artifact)})
    with pytest.raises(ClientError) as err:
        sm.create_model(
            ModelName=name, PrimaryContainer={"ModelDataUrl": str(churn_model.artifact)}
        )
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "Cannot create already existing model" in err.value.response["Error"]["Message"]


def test_metrics_use_sagemaker_names(
    sm: Any, rt: Any, churn_model: ChurnModel, server: ModelhostServer
) -> None:
    name = unique("metrics")
    deploy(sm, name, str(churn_model.artifact))
    row = csv_rows(churn_model.data.X[:1])[0]
    for _ in range(3):
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
    with pytest.raises(ClientError):
        rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body="1,2,3")
    text = urllib.request.urlopen(server.signed("GET", "/metrics"), timeout=5).read().decode()
    labels = f'EndpointName="{name}",VariantName="AllTraffic"'
    assert f"Invocations_total{{{labels}}} 4.0" in text
    assert f"Invocation4XXErrors_total{{{labels}}} 1.0" in text
    assert f"Invocation5XXErrors_total{{{labels}}} 0.0" in text
    assert f"InvocationsPerInstance_total{{{labels}}} 4.0" in text
    assert f"ModelLatency_count{{{labels}}} 4.0" in text
    assert f"OverheadLatency_count{{{labels}}} 4.0" in text
    assert "ModelLatency_bucket{" in text
