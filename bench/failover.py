"""Failover on Ray: losing the leader gateway, then losing a node, under a request loop.

    python bench/failover.py [--gateway-runs 3] [--node-runs 2] [--instances 3]

A local PostgreSQL and a local 3-node Ray cluster (`modelhost.testing`, on this machine),
two gateways on them (`fleet = ray`, default leader settings), and an endpoint with
`--instances` instances of the churn XGBoost model. A thread invokes the endpoint through
the gateway that does not lead, one request at a time, all along.

(a) The leader is killed with SIGKILL, `--gateway-runs` times (the killed one is started
    again as the follower before the next run, and the loop moves to it): how long until
    the other leads and until it adopted the instances, how many requests failed, how
    many instance processes and actors are new (goal: 0 and 0).
(b) The raylet of a node that holds an instance (never the head) is killed with SIGKILL,
    `--node-runs` times (the node is started again between runs): how long until the
    variant serves its full count again off that node, and how many requests failed.

Every request is counted; the figures are one run on a shared machine, so read them as
such. Results go to bench/results/failover-*.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from _machine import format_machine_info, machine_info
from modelhost.testing import churn
from modelhost.testing.postgres import local_postgres_server
from modelhost.testing.ray import RayCluster, local_ray_cluster, node_address
from modelhost.testing.server import ModelhostServer
from ray_scaleout import all_serve, deploy, instance_addresses

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LEAD = "took the lead"
ADOPTED = "running instance(s)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway-runs", type=int, default=3, help="leader kills")
    parser.add_argument("--node-runs", type=int, default=2, help="raylet kills")
    parser.add_argument("--instances", type=int, default=3, help="instances of the endpoint")
    return parser.parse_args(argv)


class RequestLoop:
    """Invokes the endpoint through one gateway from a thread; every outcome timed."""

    def __init__(self, url: str, row: str) -> None:
        self.url, self.row = url, row.encode()
        self.outcomes: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            req = urllib.request.Request(self.url, self.row, {"Content-Type": "text/csv"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    ok = resp.status == 200
            except OSError:
                ok = False
            self.outcomes.append((time.monotonic(), ok))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def failed_since(self, t0: float) -> int:
        return sum(1 for t, ok in self.outcomes if t >= t0 and not ok)

    def count_since(self, t0: float) -> int:
        return sum(1 for t, _ in self.outcomes if t >= t0)


def _until(condition: Any, timeout_s: float = 180.0) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def _mentions(server: ModelhostServer, text: str) -> int:
    return server.log_path.read_text(errors="replace").count(text)


def _serves(server: ModelhostServer, name: str, row: str) -> bool:
    req = urllib.request.Request(
        f"{server.url}/endpoints/{name}/invocations", row.encode(), {"Content-Type": "text/csv"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status == 200
    except OSError:
        return False


def gateway_run(
    leader: ModelhostServer, follower: ModelhostServer, cluster: RayCluster, name: str, row: str
) -> dict[str, Any]:
    """(a): SIGKILL the leader under a loop through the follower."""
    before = set(instance_addresses(follower.home, name))
    actors = cluster.actor_pids()
    leads, adoptions = _mentions(follower, LEAD), _mentions(follower, ADOPTED)
    loop = RequestLoop(f"{follower.url}/endpoints/{name}/invocations", row)
    time.sleep(2.0)
    assert leader.proc is not None
    killed = time.monotonic()
    leader.proc.kill()
    leader.proc.wait(30)
    lead_s = _until(lambda: _mentions(follower, LEAD) > leads)
    adopted_s = _until(lambda: _mentions(follower, ADOPTED) > adoptions)
    time.sleep(3.0)  # the new leader serves on its own routes for a while
    loop.stop()
    after = set(instance_addresses(follower.home, name))
    return {
        "lead_s": lead_s,
        "adopted_s": adopted_s,
        "requests": loop.count_since(killed),
        "failed_requests": loop.failed_since(killed),
        "new_instances": len(after - before),
        "new_actors": len(set(cluster.actor_pids()) - set(actors)),
    }


def node_run(
    follower: ModelhostServer, cluster: RayCluster, name: str, row: str, count: int
) -> dict[str, Any]:
    """(b): SIGKILL the raylet of a non-head node holding an instance, under a loop
    through the follower."""
    hosts = [h for h, _ in instance_addresses(follower.home, name)]
    victim = next(h for h in hosts if h != node_address(0))
    loop = RequestLoop(f"{follower.url}/endpoints/{name}/invocations", row)
    time.sleep(2.0)
    killed = time.monotonic()
    cluster.kill_node([node_address(i) for i in range(cluster.nodes)].index(victim))

    def back() -> bool:
        addresses = instance_addresses(follower.home, name)
        on = [h for h, _ in addresses]
        return len(on) == count and victim not in on and all_serve(addresses)

    back_s = _until(back)
    time.sleep(2.0)
    loop.stop()
    return {
        "victim": victim,
        "full_count_s": back_s,
        "requests": loop.count_since(killed),
        "failed_requests": loop.failed_since(killed),
        "hosts_after": sorted(h for h, _ in instance_addresses(follower.home, name)),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print(format_machine_info(info))
    work = Path(tempfile.mkdtemp(prefix="mh-failover-bench-"))
    booster = churn.train_xgboost(churn.make_churn(5000, seed=0), num_round=100, seed=0)
    artifact = churn.write_xgboost_artifact(booster, work / "model")
    row = ",".join(f"{v:g}" for v in churn.make_churn(1, seed=1).X[0])
    name = f"failover-{uuid.uuid4().hex[:6]}"
    results: dict[str, Any] = {"machine": info, "args": vars(args), "gateway": [], "node": []}
    with local_postgres_server() as pg, local_ray_cluster(nodes=3) as cluster:
        env = {
            "MODELHOST_DATABASE_URL": pg.fresh_database_url(),
            "MODELHOST_FLEET": "ray",
            "MODELHOST_RAY_ADDRESS": cluster.address,
            "MODELHOST_RAY_RESOURCE_SCALE": "0.1",
            "MODELHOST_RAY_NODE_CACHE_DIR": str(work / "node-caches"),
            "MODELHOST_AUTH_ENABLED": "false",
            "MODELHOST_LOG_LEVEL": "info",
            "MODELHOST_HEALTH_CHECK_INTERVAL_S": "0.5",
        }
        gateways = [ModelhostServer(work / "a", env=env), ModelhostServer(work / "b", env=env)]
        try:
            for gw in gateways:
                gw.start(timeout_s=120)
            sm, _ = gateways[0].clients()
            deploy(sm, name, artifact, args.instances)
            leader, follower = gateways
            for run in range(args.gateway_runs):
                _until(lambda f=follower: _serves(f, name, row), 60)
                out = gateway_run(leader, follower, cluster, name, row)
                results["gateway"].append(out)
                print(f"(a) leader killed, run {run + 1}: the other led after {out['lead_s']} s, "
                      f"adopted after {out['adopted_s']} s more; {out['failed_requests']} of "
                      f"{out['requests']} requests failed; {out['new_instances']} new "
                      f"instances, {out['new_actors']} new actors", flush=True)  # fmt: skip
                leader.start(timeout_s=120)  # back, as the follower
                leader, follower = follower, leader
            for run in range(args.node_runs):
                _until(lambda f=follower: _serves(f, name, row), 60)
                out = node_run(follower, cluster, name, row, args.instances)
                results["node"].append(out)
                print(f"(b) raylet of {out['victim']} killed, run {run + 1}: full count "
                      f"({out['hosts_after']}) after {out['full_count_s']} s; "
                      f"{out['failed_requests']} of {out['requests']} requests failed",
                      flush=True)  # fmt: skip
                cluster.start()  # the node comes back (a new Ray node) for the next run
            sm, _ = leader.clients()
            sm.delete_endpoint(EndpointName=name)
            results["actors_left_s"] = _until(lambda: not cluster.actor_pids(), 60)
        finally:
            for gw in gateways:
                gw.stop()
    RESULTS_DIR.mkdir(exist_ok=True)
    out_path = RESULTS_DIR / f"failover-{datetime.now():%Y%m%d-%H%M%S}.json"
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
