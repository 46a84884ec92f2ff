"""What an instance is doing, end to end: a real server with `compile_tree_models` on and a
short instance-sampling period, boto3, the gateway's HTTP API and /metrics.

- a multi-model endpoint lists `compiled` for a tree model once the tier switched it, and
  `failed` with the reason for a model the tier cannot compile (an XGBoost gblinear model:
  Treelite reads trees only);
- a batching single-model endpoint's counters rise under concurrent requests: every row
  went through the batcher, in at most as many predict calls as requests; its instance
  shows the model's compiled-tier state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from prometheus_client.parser import text_string_to_metric_families

from modelhost.testing.churn import csv_body, make_churn, train_xgboost, write_xgboost_artifact
from modelhost.testing.server import ModelhostServer
from modelhost.testing.state_models import write_state_models
from tests.support import FAST_ENV, deploy, unique

DEADLINE_S = 120.0
REQUESTS = 64
THREADS = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    env = {
        **FAST_ENV,
        "MODELHOST_COMPILE_TREE_MODELS": "true",
        "MODELHOST_INSTANCE_SAMPLE_INTERVAL_S": "0.5",
        "MODELHOST_METRICS_FLUSH_INTERVAL_S": "0.25",
    }
    with ModelhostServer(tmp_path_factory.mktemp("stats-home"), env=env) as srv:
        yield srv


def _wait_for(what: str, probe: Callable[[], Any]) -> Any:
    """`probe()`'s first truthy answer, within DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not (found := probe()):
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S:.0f} s"
        time.sleep(0.3)
    return found


def _get(srv: ModelhostServer, path: str) -> bytes:
    with urllib.request.urlopen(srv.signed("GET", path), timeout=30) as resp:
        body: bytes = resp.read()
        return body


def _metric(srv: ModelhostServer, name: str, **labels: str) -> float | None:
    """The sample `name` with these labels in /metrics (None when absent)."""
    text = _get(srv, "/metrics").decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def _write_linear_model(prefix: Path) -> None:
    """`<prefix>/linear.tar.gz`: an XGBoost gblinear model (served, never compiled)."""
    data = make_churn(400, seed=9)
    params = {"booster": "gblinear", "objective": "binary:logistic", "nthread": 1}
    booster = xgboost.train(params, xgboost.DMatrix(data.X, label=data.y), num_boost_round=3)
    folder = prefix / ".build-linear"
    write_xgboost_artifact(booster, folder).replace(prefix / "linear.tar.gz")
    folder.rmdir()


@pytest.mark.integration
def test_multi_model_listing_shows_each_models_compiled_tier_state(
    server: ModelhostServer, tmp_path: Path
) -> None:
    states = write_state_models(make_churn(2000, seed=4), tmp_path / "models", states=("CA",))
    _write_linear_model(states.prefix)
    sm, rt = server.clients()
    name = unique("stats-mme")
    # A fixed crossover: the tier does not measure, which keeps the test short.
    env = {"MH_INSTANCE_COMPILE_MAX_ROWS": "64"}
    deploy(sm, name, str(states.prefix) + "/", mode="MultiModel", environment=env)
    for target in ("CA.tar.gz", "linear.tar.gz"):  # loads each: the tier takes it then
        try:
            rt.invoke_endpoint(
                EndpointName=name,
                ContentType="text/csv",
                Body=csv_body(states.rows["CA"][:1]),
                TargetModel=target,
            )
        except rt.exceptions.ModelError:
            # XGBoost's in-place predict takes no gblinear model: loaded, then a 400.
            assert target == "linear.tar.gz"

    def settled() -> dict[str, Any] | None:
        listing = server.call("GET", f"/api/endpoints/{name}/models")
        models = {m["ModelName"]: m for i in listing["Instances"] for m in i.get("Models", [])}
        tiers = {n: (m.get("CompiledTier") or {}).get("state") for n, m in models.items()}
        return models if tiers == {"CA.tar.gz": "compiled", "linear.tar.gz": "failed"} else None

    models = _wait_for("compiled and failed models in the listing", settled)
    compiled, failed = models["CA.tar.gz"]["CompiledTier"], models["linear.tar.gz"]["CompiledTier"]
    assert compiled["maxRows"] == 64
    assert failed["reason"]  # what Treelite said of a model without trees
    assert models["CA.tar.gz"]["Batching"]["batchedRows"] >= 1
    # The compiled form answers with the same bits as XGBoost in process.
    answer = rt.invoke_endpoint(
        EndpointName=name,
        ContentType="text/csv",
        Body=csv_body(states.rows["CA"]),
        TargetModel="CA.tar.gz",
    )
    got = np.array(answer["Body"].read().decode().replace(",", "\n").split(), dtype=np.float32)
    assert np.array_equal(got, states.expected("CA", states.rows["CA"]))
    # Prometheus and the dashboard's snapshot have the instance's counts by state.
    labels = {"EndpointName": name, "VariantName": "AllTraffic"}
    _wait_for(
        "modelhost_compiled_models",
        lambda: (
            _metric(server, "modelhost_compiled_models", **labels, State="compiled") == 1.0
            and _metric(server, "modelhost_compiled_models", **labels, State="failed") == 1.0
        ),
    )
    snapshot = json.loads(_get(server, f"/api/dashboard/snapshot?range=5m&endpoints={name}"))
    (instance,) = snapshot["Details"][name]["Instances"]
    assert instance["CompiledModels"]["compiled"] == 1
    assert instance["CompiledModels"]["failed"] == 1
    assert instance["CompileFailures"] == [
        {"modelName": "linear.tar.gz", "reason": failed["reason"]}
    ]
    # The CLI's listing of the endpoint's models says it too.
    env = {**os.environ, "MODELHOST_URL": server.url, "MODELHOST_HOME": str(server.home)}
    out = subprocess.run(
        [sys.executable, "-m", "modelhost", "models", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "compiled (calls up to 64 rows)" in out.stdout
    assert "not compiled: " in out.stdout
    sm.delete_endpoint(EndpointName=name)


def _batching(server: ModelhostServer, name: str) -> dict[str, int] | None:
    described = server.call("GET", f"/api/endpoints/{name}")
    instances = described.get("Instances") or []
    return instances[0].get("Batching") if len(instances) == 1 else None


@pytest.mark.integration
def test_batching_counters_rise_under_concurrent_requests(
    server: ModelhostServer, tmp_path: Path
) -> None:
    data = make_churn(500, seed=3)
    artifact = write_xgboost_artifact(train_xgboost(data, num_round=20), tmp_path)
    sm, _ = server.clients()
    name = unique("stats-batch")
    deploy(sm, name, str(artifact), environment={"MH_INSTANCE_COMPILE_MAX_ROWS": "64"})
    before = _wait_for("the instance's stats", lambda: _batching(server, name))
    rows = data.X[:REQUESTS].astype(np.float32)
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def send(first: int) -> None:
        _, rt = server.clients()
        try:
            barrier.wait(timeout=60)  # all threads start sending together
            for i in range(first, REQUESTS, THREADS):
                rt.invoke_endpoint(
                    EndpointName=name, ContentType="text/csv", Body=csv_body(rows[i : i + 1])
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors

    def grown() -> dict[str, int] | None:
        now = _batching(server, name)
        done = now is not None and now["batchedRows"] - before["batchedRows"] >= REQUESTS
        return now if done else None

    after = _wait_for("the batching counters to count every request", grown)
    batches = after["batches"] - before["batches"]
    batched_rows = after["batchedRows"] - before["batchedRows"]
    alone = after["alone"] - before["alone"]
    # One row per request, every one through the batcher; merged calls make fewer predicts.
    assert batched_rows == REQUESTS
    assert 1 <= batches <= REQUESTS
    assert alone <= batches  # a call of several requests is not "alone"
    if batches < REQUESTS:  # some requests were merged: more rows than calls
        assert batched_rows > batches and after["largestRows"] > 1
    # The single model's compiled-tier state in the endpoint's instances view.
    compiled = _wait_for(
        "the model's compiled form",
        lambda: (
            (tier := server.call("GET", f"/api/endpoints/{name}")["Instances"][0]["CompiledTier"])
            and tier["state"] == "compiled"
            and tier
        ),
    )
    assert compiled["maxRows"] == 64
    labels = {"EndpointName": name, "VariantName": "AllTraffic"}
    prom = _wait_for(
        "modelhost_instance_batched_rows_total",
        lambda: _metric(server, "modelhost_instance_batched_rows_total", **labels),
    )
    assert prom >= REQUESTS
    sm.delete_endpoint(EndpointName=name)
