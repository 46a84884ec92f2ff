"""Async inference benchmark: 1,000 queued requests through InvokeEndpointAsync.

    python bench/async_inference.py [--requests 1000] [--instances 2] [--per-instance 4]

The churn XGBoost model (69 features, 100 trees) on an async endpoint whose outputs are
local files (so the store measured is modelhost's, not an S3 server's). Every request is
one CSV row in its own input file. Reported: how fast the 202s come back (submit
throughput), end-to-end throughput (first submit to last output written), and per-request
end-to-end latency (submit to the output file's mtime: p50, p90, p99); beside it, in the
same run, the same rows sent one by one with the synchronous InvokeEndpoint to a real-time
endpoint of the same size (ratios only: the machine is shared and noisy, so absolute
numbers move run to run). Results go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from _machine import format_machine_info, machine_info
from _modelhost import deploy_named
from modelhost.testing import churn
from modelhost.testing.server import ModelhostServer

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--per-instance", type=int, default=4, help="MaxConcurrentInvocations")
    parser.add_argument("--submitters", type=int, default=4, help="client threads submitting")
    return parser.parse_args(argv)


def deploy(sm: Any, name: str, artifact: Path, instances: int, async_cfg: Any = None) -> None:
    container = {"Image": IMAGE, "ModelDataUrl": str(artifact)}
    extra = {"AsyncInferenceConfig": async_cfg} if async_cfg else {}
    deploy_named(sm, name, container, instances, **extra)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def run_async(rt: Any, name: str, inputs: list[Path], submitters: int) -> dict[str, Any]:
    submitted: dict[int, tuple[float, Path]] = {}

    def submit(i: int) -> None:
        at = time.time()
        answer = rt.invoke_endpoint_async(
            EndpointName=name, InputLocation=str(inputs[i]), ContentType="text/csv"
        )
        submitted[i] = (at, Path(answer["OutputLocation"].removeprefix("file://")))

    started = time.time()
    with ThreadPoolExecutor(submitters) as pool:
        list(pool.map(submit, range(len(inputs))))
    submit_s = time.time() - started
    deadline = time.monotonic() + 1800
    pending = dict(submitted)
    done_at: dict[int, float] = {}
    while pending and time.monotonic() < deadline:
        for i, (_at, path) in list(pending.items()):
            if path.exists():
                done_at[i] = path.stat().st_mtime
                del pending[i]
        time.sleep(0.05)
    if pending:
        raise SystemExit(f"{len(pending)} requests not answered in 30 minutes")
    latencies = [done_at[i] - submitted[i][0] for i in done_at]
    total_s = max(done_at.values()) - started
    return {
        "submit_per_s": len(inputs) / submit_s,
        "end_to_end_per_s": len(inputs) / total_s,
        "total_s": total_s,
        "latency_s": {
            q: percentile(latencies, p) for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
        },
    }


def run_sync(rt: Any, name: str, rows: list[str], submitters: int) -> dict[str, Any]:
    def call(row: str) -> None:
        rt.invoke_endpoint(EndpointName=name, Body=row.encode(), ContentType="text/csv")

    started = time.time()
    with ThreadPoolExecutor(submitters) as pool:
        list(pool.map(call, rows))
    total_s = time.time() - started
    return {"per_s": len(rows) / total_s, "total_s": total_s}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = churn.make_churn(n_rows=max(args.requests, 2000), seed=7)
    booster = churn.train_xgboost(data, num_round=100, seed=0)
    rows = churn.csv_rows(data.X[: args.requests])
    with tempfile.TemporaryDirectory(prefix="async-bench-") as tmp:
        root = Path(tmp)
        artifact = churn.write_xgboost_artifact(booster, root / "model")
        inputs = []
        for i, row in enumerate(rows):
            path = root / "in" / f"{i}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(row + "\n")
            inputs.append(path)
        env = {"MODELHOST_RECONCILE_INTERVAL_S": "0.2", "MODELHOST_ASYNC_POLL_INTERVAL_S": "0.05"}
        with ModelhostServer(root / "home", env=env) as server:
            sm, rt = server.clients()
            async_cfg = {
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": args.per_instance},
                "OutputConfig": {"S3OutputPath": str(root / "out")},
            }
            deploy(sm, "bench-async", artifact, args.instances, async_cfg)
            deploy(sm, "bench-sync", artifact, args.instances)
            asynchronous = run_async(rt, "bench-async", inputs, args.submitters)
            synchronous = run_sync(rt, "bench-sync", rows, args.submitters)
    results = {
        "when": datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "args": vars(args),
        "async": asynchronous,
        "sync": synchronous,
        "async_vs_sync_throughput": asynchronous["end_to_end_per_s"] / synchronous["per_s"],
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"async-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(format_machine_info(results["machine"]))
    print(f"{args.requests} async requests, {args.instances} instances x {args.per_instance}:")
    print(f"  202s: {asynchronous['submit_per_s']:.0f}/s")
    print(
        f"  end to end: {asynchronous['end_to_end_per_s']:.0f}/s "
        f"({asynchronous['total_s']:.1f} s for all)"
    )
    lat = asynchronous["latency_s"]
    print(
        f"  latency submit->output: p50 {lat['p50']:.2f} s, p90 {lat['p90']:.2f} s, "
        f"p99 {lat['p99']:.2f} s"
    )
    print(f"  same rows, synchronous InvokeEndpoint: {synchronous['per_s']:.0f}/s")
    print(f"  async/sync throughput ratio (same run): {results['async_vs_sync_throughput']:.2f}")
    print("  (shared, noisy machine: compare ratios within one run, not absolute numbers)")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
