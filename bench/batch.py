"""Batch transform benchmark: a modelhost transform job vs in-process XGBoost.

    python bench/batch.py [--rows 77000] [--big-rows 1000000] [--runs 3] [--skip-big]
                          [--instances 1]

The seeds' job shape: the churn XGBoost model (69 features, 100 trees) over 77,000 CSV
rows, end to end (CreateTransformJob through boto3 until DescribeTransformJob says
Completed, instance start included), beside raw in-process prediction on the same rows
(`inplace_predict` on the already parsed matrix). Then a 1,000,000-row input against the
practical limit: one in-process script that reads the same CSV with pyarrow, calls
`inplace_predict` (all cores) and writes the scores. Everything on 127.0.0.1. Prints
medians, ratios and the issue's goals; results go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from _machine import format_machine_info, machine_info
from modelhost.testing import churn
from modelhost.testing.server import ModelhostServer

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
GOAL_SMALL_S = 3.0
GOAL_BIG_RATIO = 0.80


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=77_000, help="rows of the seeds' job")
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="rows of the big input")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (median)")
    parser.add_argument("--skip-big", action="store_true", help="only the 77,000-row job")
    parser.add_argument("--instances", type=int, default=1, help="TransformResources count")
    parser.add_argument(
        "--keep-alive",
        type=float,
        default=120.0,
        help="MODELHOST_TRANSFORM_KEEP_ALIVE_S: the first job starts instances (cold), the "
        "next ones take them over (warm); 0 makes every run cold",
    )
    return parser.parse_args(argv)


def write_csv(X: np.ndarray, path: Path) -> int:
    """Headerless CSV through pyarrow (float32 shortest repr); returns its size."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    table = pa.table({f"f{i}": X[:, i] for i in range(X.shape[1])})
    pa_csv.write_csv(table, str(path), pa_csv.WriteOptions(include_header=False))
    return path.stat().st_size


def in_process_limit(booster: Any, csv_path: Path, out_path: Path) -> float:
    """The limit: read the CSV with pyarrow, predict in place, write the scores."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    started = time.perf_counter()
    table = pa_csv.read_csv(
        str(csv_path), read_options=pa_csv.ReadOptions(autogenerate_column_names=True)
    )
    X = np.column_stack([c.to_numpy() for c in table.columns]).astype(np.float32)
    scores = booster.inplace_predict(X)
    pa_csv.write_csv(
        pa.table({"score": scores}), str(out_path), pa_csv.WriteOptions(include_header=False)
    )
    return time.perf_counter() - started


def run_job(
    sm: Any,
    model: str,
    input_dir: Path,
    output_dir: Path,
    instances: int,
    **extra: Any,
) -> dict[str, Any]:
    """One job over every object under `input_dir`; `extra` adds CreateTransformJob
    parameters (MaxPayloadInMB, MaxConcurrentTransforms)."""
    name = f"bench-{int(time.time() * 1000)}"
    started = time.perf_counter()
    sm.create_transform_job(
        **extra,
        TransformJobName=name,
        ModelName=model,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(input_dir)}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": str(output_dir), "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": instances},
    )
    while True:
        d = sm.describe_transform_job(TransformJobName=name)
        if d["TransformJobStatus"] not in ("InProgress", "Stopping"):
            break
        time.sleep(0.02)
    wall = time.perf_counter() - started
    if d["TransformJobStatus"] != "Completed":
        raise SystemExit(f"job {name} ended {d['TransformJobStatus']}: {d.get('FailureReason')}")
    return {"wall_s": wall, "name": name}


def check_output(path: Path, expected: np.ndarray) -> None:
    got = (
        np.loadtxt(path, dtype=np.float32)
        if len(expected) < 200_000
        else np.fromstring(path.read_bytes().replace(b"\n", b" "), dtype=np.float32, sep=" ")
    )
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
        raise SystemExit(f"wrong output in {path}: {got[:5]} vs {expected[:5]}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print(format_machine_info(info))
    print()
    results: dict[str, Any] = {"machine": info, "args": vars(args)}
    work = Path(tempfile.mkdtemp(prefix="modelhost-batch-bench-"))
    booster = churn.train_xgboost(churn.make_churn(5000, seed=0), num_round=100, seed=0)
    artifact = churn.write_xgboost_artifact(booster, work / "model")
    booster.set_param({"nthread": os.cpu_count() or 1})

    X = churn.make_churn(args.rows, seed=1).X
    small_in = work / "small-in"
    small_in.mkdir()
    size = write_csv(X, small_in / "churn.csv")
    # The scores are computed from the CSV's values, as every reader sees them.
    X_csv = np.loadtxt(small_in / "churn.csv", delimiter=",", dtype=np.float32)
    raw = []
    for _ in range(max(args.runs, 3)):
        t = time.perf_counter()
        expected_small = np.asarray(booster.inplace_predict(X_csv))
        raw.append(time.perf_counter() - t)
    print(f"{args.rows:,} rows ({size / 1e6:.1f} MB CSV)")

    env = {
        "MODELHOST_LOG_LEVEL": "warning",
        "MODELHOST_TRANSFORM_KEEP_ALIVE_S": str(args.keep_alive),
    }
    with ModelhostServer(work / "home", env=env) as srv:
        sm, _ = srv.clients()
        sm.create_model(
            ModelName="churn",
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(artifact)},
            ExecutionRoleArn="arn:aws:iam::123456789012:role/modelhost",
        )
        cold_s = run_job(sm, "churn", small_in, work / "small-out-cold", args.instances)["wall_s"]
        check_output(work / "small-out-cold" / "churn.csv.out", expected_small)
        small_runs = []
        for i in range(args.runs):
            out = work / f"small-out-{i}"
            small_runs.append(run_job(sm, "churn", small_in, out, args.instances)["wall_s"])
            check_output(out / "churn.csv.out", expected_small)
        small_s = statistics.median(small_runs)
        raw_s = statistics.median(raw)
        results["small"] = {
            "rows": args.rows,
            "cold_job_s": cold_s,
            "job_s": small_runs,
            "raw_predict_s": raw,
        }
        warm = "warm" if args.keep_alive > 0 else "cold"
        print(
            f"  job, first (cold start)   : {cold_s:6.2f} s  {args.rows / cold_s:>12,.0f} rows/s"
            "  (instances started for the job)"
        )
        print(
            f"  job, end to end ({warm})    : {small_s:6.2f} s  {args.rows / small_s:>12,.0f} "
            f"rows/s  (runs {', '.join(f'{s:.2f}' for s in small_runs)})"
        )
        print(
            f"  raw in-process predict    : {raw_s:6.3f} s  {args.rows / raw_s:>12,.0f} rows/s"
            f"  (parsed matrix, {os.cpu_count()} threads)"
        )
        goals = [
            (f"77,000 rows end to end < 3 s ({warm})", small_s, small_s < GOAL_SMALL_S),
            ("77,000 rows end to end < 3 s (cold start)", cold_s, cold_s < GOAL_SMALL_S),
        ]

        if not args.skip_big:
            big_in = work / "big-in"
            big_in.mkdir()
            big_X = np.resize(X_csv, (args.big_rows, X_csv.shape[1]))
            size = write_csv(big_X, big_in / "big.csv")
            expected_big = np.asarray(booster.inplace_predict(big_X))
            del big_X
            print(f"\n{args.big_rows:,} rows ({size / 1e6:.1f} MB CSV)")
            limit_runs, job_runs = [], []
            for i in range(args.runs):
                limit_runs.append(in_process_limit(booster, big_in / "big.csv", work / "limit.csv"))
                out = work / f"big-out-{i}"
                job_runs.append(run_job(sm, "churn", big_in, out, args.instances)["wall_s"])
                check_output(out / "big.csv.out", expected_big)
                (out / "big.csv.out").unlink()
            limit_s, job_s = statistics.median(limit_runs), statistics.median(job_runs)
            ratio = limit_s / job_s
            results["big"] = {"rows": args.big_rows, "job_s": job_runs, "limit_s": limit_runs}
            print(
                f"  job, end to end ({warm})    : {job_s:6.2f} s  {args.big_rows / job_s:>12,.0f} "
                f"rows/s  (runs {', '.join(f'{s:.2f}' for s in job_runs)})"
            )
            print(
                f"  in-process pyarrow+predict: {limit_s:6.2f} s  "
                f"{args.big_rows / limit_s:>12,.0f} rows/s  "
                f"(runs {', '.join(f'{s:.2f}' for s in limit_runs)})"
            )
            print(f"  modelhost / limit         : {ratio:6.1%}")
            goals.append(
                (
                    f"1,000,000 rows >= 80% of the in-process limit ({warm})",
                    ratio,
                    ratio >= GOAL_BIG_RATIO,
                )
            )

    print("\nGoals:")
    for label, value, ok in goals:
        shown = f"{value:.1%}" if value < 1.5 and "80%" in label else f"{value:.2f} s"
        print(f"  [{'met' if ok else 'MISSED'}] {label}: {shown}")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS_DIR / f"batch-{stamp}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
