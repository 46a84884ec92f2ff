"""Scale-out on a local Ray cluster: real-time req/s and batch rows/s with 1, 2, 3 nodes.

    python bench/ray_scaleout.py [--rows 1000000] [--duration 10] [--connections 16]
                                 [--nodes 3] [--skip-failover] [--skip-realtime]
                                 [--rows-per-object 500000] [--max-payload-mb 6]
                                 [--max-concurrent 0] [--starts cold,warm]

One local Ray cluster of `--nodes` nodes (`modelhost.testing.ray`, 1 CPU each, on this
machine) and one gateway with `fleet = ray`. For n = 1..nodes, in the same run: an
endpoint with n instances of the churn XGBoost model (one per node: the variant spreads)
under wrk for `--duration` seconds, and a transform job with InstanceCount n over `--rows`
CSV rows, twice: "cold" (its instances start for it) and "warm" (the next job takes them
over, `transform_keep_alive_s`), output checked. The input is written streaming, as
objects of `--rows-per-object` rows (one block of distinct rows repeated), so
`--rows 10000000` (1.6 GB of CSV) needs no more memory than one block; the gateway holds
a few objects at a time while the job runs. Then a node's loss: the
raylet of a node that holds an instance of a 3-instance endpoint is killed under a request
loop; it reports how long until Ray declared the actor dead, until the replacement served,
and how many requests failed. All on 127.0.0.1; the nodes share this machine's cores, so
read the ratios between node counts of the same run, not the absolute figures.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _machine import format_machine_info, machine_info
from _ray_bench import IMAGE, deploy, instance_hosts, node_loss, save_results
from _wrk import ensure_wrk, run_wrk, write_script
from batch import check_output, run_job, write_csv
from modelhost.testing import churn
from modelhost.testing.ray import RayCluster, local_ray_cluster
from modelhost.testing.server import ModelhostServer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of each batch job")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--nodes", type=int, default=3, help="Ray nodes (and the largest n)")
    parser.add_argument("--skip-failover", action="store_true", help="no node-loss run")
    parser.add_argument("--skip-realtime", action="store_true", help="no wrk runs")
    parser.add_argument(
        "--rows-per-object", type=int, default=500_000, help="rows of each input object"
    )
    parser.add_argument("--max-payload-mb", type=int, default=6, help="MaxPayloadInMB")
    parser.add_argument(
        "--max-concurrent",
        default="0",
        help="MaxConcurrentTransforms, or several (comma-separated: a job series each, in "
        "the same run); 0: the container's /execution-parameters",
    )
    parser.add_argument(
        "--starts", default="cold,warm", help="which jobs per node count: cold, warm or both"
    )
    return parser.parse_args(argv)


def write_inputs(
    block: bytes, block_rows: int, rows: int, rows_per_object: int, into: Path
) -> list[tuple[Path, int]]:
    """`rows` CSV rows as objects of `rows_per_object` rows each, written streaming (the
    block repeated, each object starting at the block's first row); (path, rows) each."""
    lines = block.splitlines(keepends=True)
    assert len(lines) == block_rows
    objects, left = [], rows
    while left > 0:
        n = min(left, rows_per_object)
        path = into / f"part-{len(objects):04d}.csv"
        with open(path, "wb") as f:
            full, rest = divmod(n, block_rows)
            for _ in range(full):
                f.write(block)
            f.write(b"".join(lines[:rest]))
        objects.append((path, n))
        left -= n
    return objects


def batch(
    sm: Any,
    work: Path,
    objects: list[tuple[Path, int]],
    scores: np.ndarray,
    n: int,
    start: str,
    args: argparse.Namespace,
    max_concurrent: int,
) -> dict[str, Any]:
    """One transform job over every object with InstanceCount n; outputs checked."""
    out = work / f"out-{n}-{start}"
    extra: dict[str, Any] = {"MaxPayloadInMB": args.max_payload_mb}
    if max_concurrent:
        extra["MaxConcurrentTransforms"] = max_concurrent
    job = run_job(sm, "churn", work / "in", out, n, **extra)
    for path, rows in objects:
        check_output(out / f"{path.name}.out", np.resize(scores, rows))
    shutil.rmtree(out, ignore_errors=True)
    job.update(nodes=n, start=start, rows=args.rows, rows_per_s=args.rows / job["wall_s"])
    job["max_concurrent"] = max_concurrent or "container"
    return job


def realtime(
    srv: ModelhostServer, sm: Any, artifact: Path, n: int, row: str, args: argparse.Namespace
) -> dict[str, Any]:
    name = f"rt-{n}"
    deploy(sm, name, artifact, n)
    hosts = instance_hosts(name)
    url = f"{srv.url}/endpoints/{name}/invocations"
    script = write_script(Path(tempfile.mkdtemp()) / "row.lua", row, "text/csv")
    wrk = ensure_wrk()
    run_wrk(wrk, url, script, args.connections, 3.0)  # warm-up
    result = run_wrk(wrk, url, script, args.connections, args.duration)
    sm.delete_endpoint(EndpointName=name)
    return {"nodes": n, "hosts": hosts, **result.as_dict()}


def failover(
    srv: ModelhostServer, cluster: RayCluster, sm: Any, artifact: Path, row: str
) -> dict[str, Any]:
    """Kill the raylet of a non-head node holding an instance, under a request loop."""
    name = "failover"
    deploy(sm, name, artifact, 3)
    out = node_loss(cluster, srv.url, name, row, 3)
    out["replacement_serving_s"] = out.pop("back_s")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mh-ray-bench-"))
    try:
        return run(args, work)
    finally:
        # The input alone is 1.6 GB at 10 M rows; the results are in bench/results.
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    info = machine_info()
    print(format_machine_info(info))
    booster = churn.train_xgboost(churn.make_churn(5000, seed=0), num_round=100, seed=0)
    artifact = churn.write_xgboost_artifact(booster, work / "model")
    # The input repeats one block of distinct rows; the scores are computed from the
    # block's values as the CSV carries them.
    X = churn.make_churn(min(args.rows, 50_000), seed=1).X
    write_csv(X, work / "block.csv")
    block_bytes = (work / "block.csv").read_bytes()
    block = np.loadtxt(work / "block.csv", delimiter=",", dtype=np.float32)
    scores = np.asarray(booster.inplace_predict(block))
    (work / "in").mkdir()
    objects = write_inputs(block_bytes, len(X), args.rows, args.rows_per_object, work / "in")
    size = sum(path.stat().st_size for path, _ in objects)
    row = ",".join(f"{v:g}" for v in block[0])
    print(f"batch input: {args.rows:,} rows in {len(objects)} objects ({size / 1e6:.0f} MB CSV)\n")
    results: dict[str, Any] = {"machine": info, "args": vars(args), "realtime": [], "batch": []}
    env = {
        "MODELHOST_FLEET": "ray",
        "MODELHOST_RAY_RESOURCE_SCALE": "0.1",
        "MODELHOST_AUTH_ENABLED": "false",
        "MODELHOST_LOG_LEVEL": "info",
        "MODELHOST_HEALTH_CHECK_INTERVAL_S": "0.5",
        # The first ("cold") job of each node count starts its instances; the second
        # ("warm") takes them over: its rows/s is the cluster's, not Ray's start-up.
        "MODELHOST_TRANSFORM_KEEP_ALIVE_S": "60",
        # The nodes' artifact caches go with the work directory.
        "MODELHOST_RAY_NODE_CACHE_DIR": str(work / "node-caches"),
    }
    # 4 GiB of Ray memory per node: the warm fleets of the smaller node counts stay
    # placed while the next count runs (an ml.m5.xlarge job instance asks 1.6 GiB at 0.1).
    with local_ray_cluster(nodes=args.nodes, memory_per_node_bytes=4 * 2**30) as cluster:
        results["ray_memory_mib_idle"] = round(cluster.memory_bytes() / 2**20)
        print(f"Ray cluster: {args.nodes} nodes, {results['ray_memory_mib_idle']} MiB resident\n")
        env["MODELHOST_RAY_ADDRESS"] = cluster.address
        with ModelhostServer(work / "home", env=env) as srv:
            sm, _ = srv.clients()
            sm.create_model(
                ModelName="churn",
                PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(artifact)},
                ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
            )
            for n in range(1, args.nodes + 1):
                if not args.skip_realtime:
                    rt = realtime(srv, sm, artifact, n, row, args)
                    results["realtime"].append(rt)
                    print(f"real-time, {n} node(s) {rt['hosts']}: {rt['requests_per_s']:,.0f} "
                          f"req/s p50 {rt['p50_us'] / 1e3:.1f} ms p99 {rt['p99_us'] / 1e3:.1f} "
                          f"ms errors {rt['errors']}", flush=True)  # fmt: skip
                for mct in (int(m) for m in args.max_concurrent.split(",")):
                    for start in args.starts.split(","):
                        job = batch(sm, work, objects, scores, n, start, args, mct)
                        results["batch"].append(job)
                        print(f"batch, {n} node(s), {start}, MaxConcurrentTransforms "
                              f"{job['max_concurrent']}: {job['wall_s']:.1f} s, "
                              f"{job['rows_per_s']:,.0f} rows/s", flush=True)  # fmt: skip
            if not args.skip_failover and args.nodes >= 3:
                fo = failover(srv, cluster, sm, artifact, row)
                results["failover"] = fo
                print(f"node loss ({fo['victim']}): replacement serving after "
                      f"{fo['replacement_serving_s']} s; {fo['failed_requests']} of "
                      f"{fo['requests']} requests failed", flush=True)  # fmt: skip
    save_results("ray_scaleout", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
