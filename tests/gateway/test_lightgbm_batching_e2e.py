"""LightGBM endpoints with batching on, through boto3: concurrent requests, one malformed.

A single-model endpoint and a multi-model one (TargetModel) each take concurrent one-row
requests; every good one answers exactly what the booster predicts in process (NPY
answers, compared bit for bit), the malformed ones fail alone with their own status, and
the instance's batching counters (the models listing; the native describe's `Instances`,
polled every `instance_sample_interval_s`) count every good row in at most as many predict
calls (tests/container/test_batching_lightgbm.py shows the merging in process).
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import ChurnData, csv_rows, write_lightgbm_artifact
from modelhost.testing.server import ModelhostServer
from tests.lgb_support import lgb_train
from tests.support import deploy, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BATCHING = {"MH_INSTANCE_BATCHING": "on", "MH_INSTANCE_BATCH_MAX_WAIT_MS": "2"}
ROWS = 48
BAD = {7: "1.0,2.0,3.0", 23: "a,b,c"}  # wrong feature count (400), not numbers (415)


@pytest.fixture(scope="module")
def lgb_model(churn_data: ChurnData, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A binary churn model with a categorical column, and the directory holding its
    `model.tar.gz` (the multi-model endpoint's prefix)."""
    X = churn_data.X.astype(np.float64)
    booster = lgb_train(
        {"objective": "binary", "num_leaves": 31},
        X,
        churn_data.y,
        rounds=60,
        categorical_feature=[0],
    )
    out = tmp_path_factory.mktemp("lgb-batch")
    write_lightgbm_artifact(booster, out)
    return booster, out


@pytest.mark.parametrize("mode", ["single", "multi-model"])
def test_concurrent_requests_merge_and_a_malformed_one_fails_alone(
    server: ModelhostServer,
    sm: Any,
    rt: Any,
    churn_data: ChurnData,
    lgb_model: tuple[Any, Path],
    mode: str,
) -> None:
    booster, folder = lgb_model
    name = unique("lgbbatch")
    multi = mode == "multi-model"
    artifact = f"file://{folder}/" if multi else f"file://{folder / 'model.tar.gz'}"
    deploy(
        sm,
        name,
        artifact,
        image="lightgbm",
        environment=BATCHING,
        mode="MultiModel" if multi else None,
    )
    X = churn_data.X[:ROWS].astype(np.float64)
    rows = csv_rows(X)
    target = {"TargetModel": "model.tar.gz"} if multi else {}

    def invoke(i: int) -> Any:
        try:
            resp = rt.invoke_endpoint(
                EndpointName=name,
                ContentType="text/csv",
                Accept="application/x-npy",
                Body=BAD.get(i, rows[i]),
                **target,
            )
        except ClientError as exc:
            return exc.response.get("OriginalStatusCode", exc)
        return np.load(io.BytesIO(resp["Body"].read()))

    try:
        invoke(0)  # a multi-model instance loads the model on its first request
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(invoke, range(ROWS)))
        assert results[7] == 400 and results[23] == 415, (results[7], results[23])
        for i, got in enumerate(results):
            if i not in BAD:
                assert isinstance(got, np.ndarray), (i, got)
                assert np.array_equal(got, booster.predict(X[i : i + 1])), i
        counters = _batching_counters(server, name, multi, ROWS - len(BAD) + 1)
        assert counters["batchedRows"] == ROWS - len(BAD) + 1  # every good row, warm-up too
        assert 1 <= counters["batches"] <= counters["batchedRows"]
        if counters["batches"] < counters["batchedRows"]:  # requests met: merged calls
            assert counters["largestRows"] > 1
    finally:
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60}
        )


def _batching_counters(
    server: ModelhostServer, name: str, multi: bool, rows: int
) -> dict[str, int]:
    """The instance's (single-model) or the model's (multi-model) batching counters, once
    they count `rows` rows (the gateway polls single-model instances every
    `instance_sample_interval_s`, 10 s here)."""
    deadline = time.monotonic() + 60
    while True:
        if multi:
            listing = server.call("GET", f"/api/endpoints/{name}/models")
            found = [m["Batching"] for i in listing["Instances"] for m in i.get("Models", [])]
        else:
            instances = server.call("GET", f"/api/endpoints/{name}")["Instances"]
            found = [i["Batching"] for i in instances]
        if found and found[0] and found[0]["batchedRows"] >= rows:
            counters: dict[str, int] = found[0]
            return counters
        assert time.monotonic() < deadline, found
        time.sleep(0.5)
