"""Serverless cold start: the first answer of an endpoint that runs no instance.

    python bench/serverless.py [--runs 7] [--idle-s 1] [--skip-spawn]

The churn XGBoost model (69 features, 100 trees) on a serverless endpoint
(MemorySizeInMB 2048, MaxConcurrency 5, no ProvisionedConcurrency), through boto3 on
127.0.0.1, with the serverless idle timeout at `--idle-s`:

- **from zero, warm cache**: the endpoint is InService with no instance and its artifact
  is in the local cache; time from `invoke_endpoint` to its answer (an instance starts
  for the request). Goal: 250 ms or less.
- **from zero, empty cache**: a new artifact location (not cached yet) each run; time from
  `create_endpoint` to the first answer: fetch and unpack of the artifact, the control
  loop's pass, then the cold start of the request.

Each is measured with the zygote (the default) and without it (`MODELHOST_ZYGOTE=false`:
a fresh interpreter per instance), in the same run. Prints machine info and medians; the
machine is shared and noisy, so compare the ratios of one run, not absolute numbers
across runs. Results go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from _machine import format_machine_info, machine_info
from modelhost.testing import churn
from modelhost.testing.server import ModelhostServer

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
GOAL_MS = 250.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each measurement (median)")
    parser.add_argument("--idle-s", type=float, default=1.0, help="MODELHOST_SERVERLESS_IDLE_S")
    parser.add_argument("--skip-spawn", action="store_true", help="only with the zygote")
    return parser.parse_args(argv)


def _wait(condition: Callable[[], bool], timeout_s: float = 120.0, poll_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark waited too long")
        time.sleep(poll_s)


def _running(sm: Any, name: str) -> int:
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    return int(variant.get("CurrentInstanceCount", 0))


def _create(sm: Any, name: str, artifact: Path) -> None:
    container = {"Image": IMAGE, "ModelDataUrl": str(artifact)}
    sm.create_model(ModelName=name, PrimaryContainer=container)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def _invoke(rt: Any, name: str, row: str, expected: float) -> None:
    out = rt.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=row)
    got = float(out["Body"].read().decode().strip())
    assert abs(got - expected) < 1e-4, (got, expected)


def measure(
    zygote: bool, runs: int, idle_s: float, artifact: Path, row: str, expected: float
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="serverless-bench-"))
    # Fresh artifact locations live outside the state directory (it may not be named).
    copies = Path(tempfile.mkdtemp(prefix="serverless-bench-copies-"))
    env = {
        "MODELHOST_SERVERLESS_IDLE_S": str(idle_s),
        "MODELHOST_ZYGOTE": "true" if zygote else "false",
        "MODELHOST_RECONCILE_INTERVAL_S": "0.05",
        "MODELHOST_HEALTH_CHECK_INTERVAL_S": "1",
        "MODELHOST_LOG_LEVEL": "warning",
    }
    try:
        with ModelhostServer(home, env=env) as server:
            sm, rt = server.clients(retries={"max_attempts": 1, "mode": "standard"})
            _create(sm, "warm", artifact)
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName="warm", WaiterConfig={"Delay": 0.2, "MaxAttempts": 600}
            )
            _invoke(rt, "warm", row, expected)  # the zygote is up; the first start is done
            warm_ms = []
            for _ in range(runs):
                _wait(lambda: _running(sm, "warm") == 0)
                started = time.perf_counter()
                _invoke(rt, "warm", row, expected)
                warm_ms.append((time.perf_counter() - started) * 1e3)
            cold_ms = []
            for i in range(runs):
                fresh = copies / f"fresh-{i}" / "model.tar.gz"
                fresh.parent.mkdir()
                shutil.copy(artifact, fresh)
                started = time.perf_counter()
                _create(sm, f"cold-{i}", fresh)
                _wait(
                    lambda i=i: (
                        sm.describe_endpoint(EndpointName=f"cold-{i}")["EndpointStatus"]
                        == "InService"
                    )
                )
                _invoke(rt, f"cold-{i}", row, expected)
                cold_ms.append((time.perf_counter() - started) * 1e3)
                sm.delete_endpoint(EndpointName=f"cold-{i}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(copies, ignore_errors=True)
    return {
        "zygote": zygote,
        "warm_cache_ms": warm_ms,
        "empty_cache_ms": cold_ms,
        "warm_cache_median_ms": statistics.median(warm_ms),
        "empty_cache_median_ms": statistics.median(cold_ms),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print(format_machine_info(info))
    print("note: a shared, noisy machine; compare the ratios within this run\n")
    work = Path(tempfile.mkdtemp(prefix="serverless-bench-model-"))
    data = churn.make_churn()
    booster = churn.train_xgboost(data)
    artifact = churn.write_xgboost_artifact(booster, work)
    X = data.X[:1]
    row = ",".join(repr(float(v)) for v in X[0])
    expected = float(booster.inplace_predict(X)[0])
    results = [measure(True, args.runs, args.idle_s, artifact, row, expected)]
    if not args.skip_spawn:
        results.append(measure(False, args.runs, args.idle_s, artifact, row, expected))
    shutil.rmtree(work, ignore_errors=True)
    print(f"first answer from zero, median of {args.runs} (ms):")
    print(f"{'':24}{'warm cache':>12}{'empty cache':>14}")
    for r in results:
        label = "zygote (fork)" if r["zygote"] else "fresh interpreter"
        print(f"{label:24}{r['warm_cache_median_ms']:>12.0f}{r['empty_cache_median_ms']:>14.0f}")
    if len(results) == 2:
        ratio = results[0]["warm_cache_median_ms"] / results[1]["warm_cache_median_ms"]
        print(f"zygote / fresh interpreter, warm cache: {ratio:.2f}")
    met = results[0]["warm_cache_median_ms"] <= GOAL_MS
    print(f"goal: warm-cache first answer <= {GOAL_MS:.0f} ms: {'met' if met else 'NOT met'}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"serverless-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"machine": info, "args": vars(args), "results": results}, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
