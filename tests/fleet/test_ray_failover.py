"""Losing the leader gateway loses nothing on Ray: two gateways on one PostgreSQL and a
3-node local Ray cluster; the leader is killed with SIGKILL under a request loop through
the other one, which takes the lead and adopts the running instances (detached actors)
instead of starting new ones."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modelhost.testing.churn import csv_rows
from modelhost.testing.postgres import PostgresCluster
from modelhost.testing.ray import RayCluster
from modelhost.testing.server import ModelhostServer, boto3_clients
from tests.fleet.ray_support import instance_addresses
from tests.gateway.support import shared_auth_homes
from tests.support import FAST_ENV, ChurnModel, Loop, deploy, unique

pytest.importorskip("ray")
pytestmark = [pytest.mark.integration, pytest.mark.ray]

NO_RETRY = {"retries": {"max_attempts": 1, "mode": "standard"}}


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, f"not in {timeout_s} s: {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def _adopted(log_path: Path) -> int:
    return sum(int(n) for n in re.findall(r"adopted (\d+) running", log_path.read_text()))


def test_killing_the_leader_loses_no_request_and_no_instance(
    postgres: PostgresCluster, ray_cluster: RayCluster, churn_model: ChurnModel, tmp_path: Path
) -> None:
    env = {
        **FAST_ENV,
        "MODELHOST_DATABASE_URL": postgres.fresh_database_url(),
        "MODELHOST_LEADER_POLL_INTERVAL_S": "0.2",
        "MODELHOST_FLEET": "ray",
        "MODELHOST_RAY_ADDRESS": ray_cluster.address,
        "MODELHOST_RAY_RESOURCE_SCALE": "0.1",
        "MODELHOST_RAY_NODE_CACHE_DIR": str(tmp_path / "node-caches"),
    }
    ray_cluster.start()  # a node another test killed comes back
    name = unique("ray-lead")
    body = csv_rows(churn_model.data.X[:1])[0]
    home_a, home_b = shared_auth_homes(tmp_path, "a", "b")
    with (
        ModelhostServer(home_a, env=env) as leader,
        ModelhostServer(home_b, env=env) as follower,
    ):
        sm_a, _ = leader.clients(**NO_RETRY)
        sm_b, rt_b = boto3_clients(follower.url, credentials=leader.credentials, **NO_RETRY)
        deploy(sm_a, name, str(churn_model.artifact), instances=3)
        # The instances run on the nodes; their logs stay in the leader's home.
        before = instance_addresses(home_a, name)
        assert len(before) == 3 and len({h for h, _ in before.values()}) == 3, before
        actors = ray_cluster.actor_pids()
        assert len(actors) == 3, actors
        with Loop(rt_b, name, body, limit_s=200) as loop:
            loop.wait_ok(20)
            assert leader.proc is not None
            leader.proc.kill()  # no goodbye: its Ray job and its lock go with it
            leader.proc.wait(30)
            lead_s = _until(
                lambda: "took the lead" in follower.log_path.read_text(), "a new leader"
            )
            adopt_s = _until(lambda: _adopted(follower.log_path) == 3, "the adoption")
            print(f"led {lead_s:.2f} s after the SIGKILL, adopted 3 after {adopt_s:.2f} s more")
            loop.wait_ok(20)
        assert loop.errors == [], loop.errors[:5]
        # The same processes serve, in the same actors: none started anew.
        assert instance_addresses(home_a, name) == before
        assert ray_cluster.actor_pids() == actors
        assert "exited; replacing" not in follower.log_path.read_text()
        sm_b.delete_endpoint(EndpointName=name)
        sm_b.get_waiter("endpoint_deleted").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
        _until(lambda: not ray_cluster.actor_pids(), "no instance actor left", 60.0)
        assert not instance_addresses(home_a, name)
