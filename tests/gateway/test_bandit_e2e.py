"""Bandit routing through the real server: rewards move traffic to the better variant."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from typing import Any

import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.server import ModelhostServer
from tests.support import ChurnModel, cli

pytestmark = pytest.mark.integration


def _api(server: ModelhostServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = server.signed(method, path, data)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_rewards_move_traffic_to_the_better_variant(
    server: ModelhostServer,
    churn_model: ChurnModel,
    two_variants: str,
) -> None:
    name = two_variants
    sm, rt = server.clients()
    row = csv_rows(churn_model.data.X[:1])[0]
    status, out = _api(
        server,
        "PUT",
        f"/api/endpoints/{name}/routing",
        {"Strategy": "ThompsonSampling", "MinExplorationShare": 0.05},
    )
    assert status == 200, out
    assert out["RoutingConfig"]["Strategy"] == "ThompsonSampling"
    assert out["CurrentWeights"] == pytest.approx({"A": 0.5, "B": 0.5}, abs=0.05)
    rand = random.Random(3)
    rates = {"A": 0.1, "B": 0.9}
    served: list[str] = []
    try:
        for batch in range(8):
            rewards = []
            for i in range(40):
                inference_id = f"{name}-{batch}-{i}"
                resp = rt.invoke_endpoint(
                    EndpointName=name, ContentType="text/csv", Body=row, InferenceId=inference_id
                )
                variant = resp["InvokedProductionVariant"]
                served.append(variant)
                headers = resp["ResponseMetadata"]["HTTPHeaders"]
                assert headers["x-modelhost-inference-id"] == inference_id
                value = 1.0 if rand.random() < rates[variant] else 0.0
                rewards.append({"InferenceId": inference_id, "Reward": value})
            status, out = _api(
                server, "POST", f"/api/endpoints/{name}/rewards", {"Rewards": rewards}
            )
            assert status == 200, out
            assert out["Counts"]["Accepted"] == 40
        desc = sm.describe_endpoint(EndpointName=name)
        weights = {v["VariantName"]: v["CurrentWeight"] for v in desc["ProductionVariants"]}
        assert weights["B"] > 0.8 and weights["A"] >= 0.05 - 1e-9
        assert served[-40:].count("B") > 20
        # Retried, unknown and late rewards are reported, not counted.
        status, out = _api(
            server,
            "POST",
            f"/api/endpoints/{name}/rewards",
            {"Rewards": [rewards[0], {"InferenceId": "never-seen", "Reward": 1}]},
        )
        assert [r["Outcome"] for r in out["Results"]] == ["Duplicate", "Unknown"]
        status, native = _api(server, "GET", f"/api/endpoints/{name}")
        assert status == 200 and native["EndpointName"] == name
        routing = native["Routing"]
        assert sum(v["Rewards"] for v in routing["Variants"]) == 320
        assert routing["RewardOutcomes"] == {
            "Accepted": 320,
            "Duplicate": 1,
            "Late": 0,
            "Unknown": 1,
        }
        with urllib.request.urlopen(server.signed("GET", "/metrics"), timeout=10) as resp:
            metrics = resp.read().decode()
        assert f'BanditRewards_total{{EndpointName="{name}",VariantName="B"}}' in metrics
        assert f'VariantWeight{{EndpointName="{name}",VariantName="B"}}' in metrics
        # The CLI shows the same state.
        shown = cli(server, "routing", name)
        assert shown.returncode == 0, shown.stderr
        assert "ThompsonSampling" in shown.stdout and "Duplicate 1" in shown.stdout
        status, bad = _api(
            server, "POST", f"/api/endpoints/{name}/rewards", {"InferenceId": "x", "Reward": 2}
        )
        assert status == 400 and "Rewards[0].Reward must be a number between 0 and 1" in str(bad)
    finally:
        # The module's other tests expect configured weights.
        status, out = _api(server, "DELETE", f"/api/endpoints/{name}/routing")
    assert status == 200 and out["RoutingConfig"] is None
    desc = sm.describe_endpoint(EndpointName=name)
    assert {v["CurrentWeight"] for v in desc["ProductionVariants"]} == {1.0}


def test_bandit_config_is_validated(server: ModelhostServer, two_variants: str) -> None:
    status, out = _api(server, "PUT", f"/api/endpoints/{two_variants}/routing", {"Strategy": "UCB"})
    assert status == 400 and "Strategy must be one of" in json.dumps(out)
    status, out = _api(server, "PUT", "/api/endpoints/no-such-endpoint/routing", {})
    assert status == 404
    status, out = _api(
        server,
        "POST",
        f"/api/endpoints/{two_variants}/rewards",
        {"InferenceId": "x", "Reward": 1},
    )
    assert status == 400 and "no bandit RoutingConfig" in json.dumps(out)
