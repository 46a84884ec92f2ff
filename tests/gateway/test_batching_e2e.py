"""Batching and workers through the whole gateway → instance path, with concurrent clients."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from tests.support import ChurnModel, deploy, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.mark.parametrize(
    "environment",
    [
        {"MH_INSTANCE_BATCHING": "on", "MH_INSTANCE_BATCH_MAX_ROWS": "4"},
        {"MH_INSTANCE_BATCHING": "off", "SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
    ],
    ids=["batching", "workers2"],
)
def test_concurrent_invocations_answer_like_in_process(
    sm: Any, rt: Any, churn_model: ChurnModel, environment: dict[str, str]
) -> None:
    name = unique("batch")
    deploy(sm, name, f"file://{churn_model.artifact}", environment=environment)
    X = churn_model.data.X[:40]
    expected = churn_model.expected(X)
    rows = csv_rows(X)
    bad = ",".join(["1.0"] * 3)  # wrong feature count: must fail alone

    def invoke(i: int) -> Any:
        body = bad if i % 10 == 7 else rows[i]
        try:
            resp = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=body)
        except ClientError as exc:
            return exc.response.get("OriginalStatusCode", exc)
        return float(resp["Body"].read().decode())

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(invoke, range(len(rows))))
        for i, got in enumerate(results):
            if i % 10 == 7:
                assert got == 400, got
            else:
                assert abs(got - float(expected[i])) <= 1e-6
    finally:
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
        )
