"""Two gateways on one PostgreSQL: the follower serves the leader's endpoints, a weight
change through either reaches both, and the leader's death moves the controller."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from modelhost.testing.churn import csv_rows
from modelhost.testing.postgres import PostgresCluster
from modelhost.testing.server import ModelhostServer, boto3_clients
from tests.gateway.support import shared_auth_homes
from tests.support import FAST_ENV, XGBOOST_IMAGE, ChurnModel, unique

pytestmark = pytest.mark.integration

NO_RETRY = {"retries": {"max_attempts": 1, "mode": "standard"}}


def _variants(rt: Any, name: str, row: str, n: int) -> set[str]:
    """The variants that answered n invocations; {} if any failed (not routable yet)."""
    seen = set()
    for _ in range(n):
        try:
            out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
        except ClientError:
            return set()
        seen.add(out["InvokedProductionVariant"])
    return seen


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> float:
    """Seconds until `condition()` held (for the report, never asserted)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, f"not in {timeout_s} s: {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def _create(sm: Any, name: str, a: ChurnModel, b: ChurnModel) -> None:
    for suffix, model in (("a", a), ("b", b)):
        sm.create_model(
            ModelName=f"{name}-{suffix}",
            PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": str(model.artifact)},
        )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": v, "ModelName": f"{name}-{v.lower()}", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large", "InitialVariantWeight": w}
            for v, w in (("A", 1), ("B", 0))
        ],
    )  # fmt: skip
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )


def test_two_gateways_share_routes_and_the_lead(
    postgres: PostgresCluster,
    churn_model: ChurnModel,
    churn_model_small: ChurnModel,
    tmp_path: Path,
) -> None:
    env = {
        **FAST_ENV,
        "MODELHOST_DATABASE_URL": postgres.fresh_database_url(),
        "MODELHOST_LEADER_POLL_INTERVAL_S": "0.2",
    }
    name = unique("gw")
    row = csv_rows(churn_model.data.X[:1])[0]
    home_a, home_b = shared_auth_homes(tmp_path, "a", "b")
    with (
        ModelhostServer(home_a, env=env) as leader,
        ModelhostServer(home_b, env=env) as follower,
    ):
        assert leader.credentials == follower.credentials  # one bootstrap admin key
        sm_a, rt_a = leader.clients(**NO_RETRY)
        sm_b, rt_b = boto3_clients(follower.url, credentials=leader.credentials, **NO_RETRY)
        _create(sm_a, name, churn_model, churn_model_small)
        # The follower routes to the leader's instances from the leader's snapshot.
        _until(lambda: _variants(rt_b, name, row, 5) == {"A"}, "the follower serves A")
        sm_b.update_endpoint_weights_and_capacities(
            EndpointName=name,
            DesiredWeightsAndCapacities=[
                {"VariantName": "A", "DesiredWeight": 0},
                {"VariantName": "B", "DesiredWeight": 1},
            ],
        )
        seen_s = _until(lambda: _variants(rt_b, name, row, 10) == {"B"}, "weights on B")
        print(f"weight change through the follower served by it after {seen_s:.2f} s")
        assert _variants(rt_a, name, row, 10) == {"B"}
        assert leader.proc is not None
        leader.proc.kill()  # no goodbye: its lock goes with its database connection
        leader.proc.wait(30)
        killed = time.monotonic()
        lead_s = _until(lambda: "took the lead" in follower.log_path.read_text(), "a new leader")
        print(f"the survivor took the lead {lead_s:.2f} s after the leader's SIGKILL")
        # The new leader starts the endpoint's instances again (the old ones die with
        # their gateway) and serves from its own controller's snapshots.
        _until(lambda: _variants(rt_b, name, row, 3) == {"B"}, "the survivor serves", 120.0)
        print(f"the survivor led and served again {time.monotonic() - killed:.2f} s after")
        assert sm_b.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
        sm_b.delete_endpoint(EndpointName=name)
        sm_b.get_waiter("endpoint_deleted").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
