"""`modelhost loadtest` in one Locust process vs Locust's distributed mode, same run.

    python bench/loadtest_workers.py [--users 16] [--duration 10] [--workers 0,2]

Starts a modelhost server on 127.0.0.1 with the churn XGBoost model on one instance, then
load-tests it once per worker count with the same users and duration, and prints req/s and
latency percentiles side by side with each run's ratio to the first. The machine is shared
and noisy: read the ratios of one run, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _machine import format_machine_info, machine_info
from modelhost.loadtest.run import load_test
from modelhost.loadtest.spec import LoadSpec, constant_phase
from modelhost.testing.churn import (
    csv_rows,
    make_churn,
    train_xgboost,
    write_xgboost_artifact,
)
from modelhost.testing.server import ModelhostServer

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", default="0,2")
    args = parser.parse_args()
    print(format_machine_info(machine_info()))
    root = Path(tempfile.mkdtemp(prefix="loadtest-bench-"))
    data = make_churn(2000, seed=7)
    artifact = write_xgboost_artifact(train_xgboost(data, num_round=100), root / "model")
    payload = root / "rows.csv"
    payload.write_text("\n".join(csv_rows(data.X[:200])) + "\n")
    rows = []
    with ModelhostServer(root / "home") as server:
        sm, _ = server.clients()
        sm.create_model(
            ModelName="churn", PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(artifact)}
        )
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": "churn",
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
        }
        sm.create_endpoint_config(EndpointConfigName="churn", ProductionVariants=[variant])
        sm.create_endpoint(EndpointName="churn", EndpointConfigName="churn")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="churn", WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
        )
        key_id, secret = server.credentials
        for workers in (int(w) for w in args.workers.split(",")):
            spec = LoadSpec(
                endpoint="churn",
                phases=(constant_phase(args.users, float(args.users), args.duration),),
                payload_path=str(payload),
                endpoint_url=server.url,
                access_key_id=key_id,
                secret_access_key=secret,
                workers=workers,
                seed=1,
            )
            result = load_test(spec, root / f"w{workers}", echo=lambda _line: None)
            rows.append((workers, result["Summary"]))
    base = rows[0][1]["RequestsPerSecond"] or 1.0
    print(f"{'workers':>8}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'failures':>10}")
    for workers, s in rows:
        lat = s["LatencyMs"]
        print(
            f"{workers:>8}{s['RequestsPerSecond']:>10.1f}{s['RequestsPerSecond'] / base:>8.2f}"
            f"{lat['p50']:>9.1f}{lat['p99']:>9.1f}{s['Failures']:>10}"
        )
    out = Path(__file__).resolve().parent / "results" / "loadtest_workers.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine_info(), "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
