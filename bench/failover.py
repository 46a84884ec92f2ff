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
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from _machine import format_machine_info, machine_info
from _ray_bench import RequestLoop, deploy, instance_addresses, node_loss, save_results, until
from modelhost.testing import churn
from modelhost.testing.postgres import local_postgres_server
from modelhost.testing.ray import RayCluster, local_ray_cluster
from modelhost.testing.server import ModelhostServer

LEAD = "took the lead"
ADOPTED = "running instance(s)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway-runs", type=int, default=3, help="leader kills")
    parser.add_argument("--node-runs", type=int, default=2, help="raylet kills")
    parser.add_argument("--instances", type=int, default=3, help="instances of the endpoint")
    return parser.parse_args(argv)


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
    before = set(instance_addresses(name))
    actors = cluster.actor_pids()
    leads, adoptions = _mentions(follower, LEAD), _mentions(follower, ADOPTED)
    loop = RequestLoop(f"{follower.url}/endpoints/{name}/invocations", row)
    time.sleep(2.0)
    assert leader.proc is not None
    killed = time.monotonic()
    leader.proc.kill()
    leader.proc.wait(30)
    lead_s = until(lambda: _mentions(follower, LEAD) > leads)
    adopted_s = until(lambda: _mentions(follower, ADOPTED) > adoptions)
    time.sleep(3.0)  # the new leader serves on its own routes for a while
    loop.stop()
    after = set(instance_addresses(name))
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
    out = node_loss(cluster, follower.url, name, row, count, settle_s=2.0)
    out["full_count_s"] = out.pop("back_s")
    return out


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
                until(lambda f=follower: _serves(f, name, row), 60)
                out = gateway_run(leader, follower, cluster, name, row)
                results["gateway"].append(out)
                print(f"(a) leader killed, run {run + 1}: the other led after {out['lead_s']} s, "
                      f"adopted after {out['adopted_s']} s more; {out['failed_requests']} of "
                      f"{out['requests']} requests failed; {out['new_instances']} new "
                      f"instances, {out['new_actors']} new actors", flush=True)  # fmt: skip
                leader.start(timeout_s=120)  # back, as the follower
                leader, follower = follower, leader
            for run in range(args.node_runs):
                until(lambda f=follower: _serves(f, name, row), 60)
                out = node_run(follower, cluster, name, row, args.instances)
                results["node"].append(out)
                print(f"(b) raylet of {out['victim']} killed, run {run + 1}: full count "
                      f"({out['hosts_after']}) after {out['full_count_s']} s; "
                      f"{out['failed_requests']} of {out['requests']} requests failed",
                      flush=True)  # fmt: skip
                cluster.start()  # the node comes back (a new Ray node) for the next run
            sm, _ = leader.clients()
            sm.delete_endpoint(EndpointName=name)
            results["actors_left_s"] = until(lambda: not cluster.actor_pids(), 60)
        finally:
            for gw in gateways:
                gw.stop()
    save_results("failover", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
