"""Real-time inference benchmark: modelhost vs MLServer 1.7 vs XGBoost in-process.

    python bench/realtime.py [--duration 10] [--runs 3] [--connections 1,8,32,64]
                             [--skip-mlserver] [--skip-modelhost] [--instances 1]

Serves the churn XGBoost model (69 features, 100 trees) and loads each server with wrk
(one thread, keep-alive, one CSV or V2 row per request) on 127.0.0.1 only. See
bench/README.md for what the columns mean. Results go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

import _mlserver
from _machine import format_machine_info, machine_info
from _proc import Managed, busy_elsewhere_pct, free_port
from _wrk import BenchError, ensure_wrk, run_wrk, write_script
from modelhost import demo
from modelhost.testing import churn

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
TOLERANCE = 1e-6
WARMUP_CONNECTIONS = 8
NOISY_OTHER_CPU_PCT = 25.0
"""A run during which other processes used more than this (% of one core) is noisy."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per connection count (median)")
    parser.add_argument(
        "--connections",
        default="1,8,32,64",
        help="comma-separated keep-alive connection counts (default 1,8,32,64)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server")
    parser.add_argument(
        "--noisy-retries",
        type=int,
        default=2,
        help="repeat a run disturbed by other processes up to this many times (default 2)",
    )
    parser.add_argument("--skip-mlserver", action="store_true", help="no MLServer baseline")
    parser.add_argument("--skip-modelhost", action="store_true", help="no modelhost run")
    parser.add_argument(
        "--instances", type=int, default=1, help="modelhost InitialInstanceCount (default 1)"
    )
    parser.add_argument(
        "--mlserver-workers",
        type=int,
        default=0,
        help="MLServer parallel_workers (0 = predict in the HTTP process, the faster "
        "setting on 2 cores without adaptive batching)",
    )
    args = parser.parse_args(argv)
    try:
        args.connections = sorted({int(c) for c in args.connections.split(",") if c.strip()})
    except ValueError:
        parser.error("--connections takes integers such as 1,8,32,64")
    if not args.connections or min(args.connections) < 1 or max(args.connections) > 1024:
        parser.error("--connections must be between 1 and 1024")
    if (
        args.duration <= 0
        or args.runs < 1
        or args.instances < 1
        or args.warmup < 0
        or args.noisy_retries < 0
    ):
        parser.error("--duration, --runs and --instances must be positive")
    return args


# --- baseline A: XGBoost in this process --------------------------------------------------


def bench_in_process(booster: Any, row: np.ndarray, batch: np.ndarray) -> dict[str, Any]:
    """One-row `inplace_predict` latency and rate on one thread, and batch rows/s."""
    booster.set_param({"nthread": 1})
    x = row.reshape(1, -1)
    for _ in range(300):
        booster.inplace_predict(x)
    calls = 5000
    latencies = np.empty(calls)
    started = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter_ns()
        booster.inplace_predict(x)
        latencies[i] = time.perf_counter_ns() - t0
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = {
        "one_row_calls": calls,
        "one_row_p50_us": float(np.percentile(latencies, 50) / 1e3),
        "one_row_p99_us": float(np.percentile(latencies, 99) / 1e3),
        "one_row_calls_per_s": calls / elapsed,
        "batch_rows": int(batch.shape[0]),
    }
    for threads in (1, 2):
        booster.set_param({"nthread": threads})
        booster.inplace_predict(batch)
        times: list[float] = []
        for _ in range(7):
            begin = time.perf_counter()
            booster.inplace_predict(batch)
            times.append(time.perf_counter() - begin)
        result[f"batch_rows_per_s_{threads}_thread"] = batch.shape[0] / statistics.median(times)
    booster.set_param({"nthread": 1})
    return result


# --- one wrk series against one server ----------------------------------------------------


def run_series(
    name: str,
    wrk: str,
    url: str,
    script: Path,
    args: argparse.Namespace,
    server_pid: int,
) -> dict[str, Any]:
    if args.warmup > 0:
        print(f"  warm-up {args.warmup:g} s at {WARMUP_CONNECTIONS} connections", flush=True)
        run_wrk(wrk, url, script, WARMUP_CONNECTIONS, args.warmup, server_pid)
    runs: dict[int, list[dict[str, Any]]] = {c: [] for c in args.connections}
    # Runs are interleaved (1, 8, 32, 64, 1, 8, ...) so slow drift spreads over all counts.
    for run in range(args.runs):
        for c in args.connections:
            # On a shared machine another job can take a core mid-run; such a run is
            # repeated (a bounded number of times) and the least disturbed one is kept.
            best = None
            for attempt in range(1 + args.noisy_retries):
                r = run_wrk(wrk, url, script, c, args.duration, server_pid)
                other = r.other_cpu_pct or 0.0
                noisy = other > NOISY_OTHER_CPU_PCT
                print(
                    f"  {name} c={c:<4} run {run + 1}/{args.runs}: {r.requests_per_s:>9,.0f} "
                    f"req/s  p50 {r.p50_us / 1e3:6.2f} ms  p99 {r.p99_us / 1e3:6.2f} ms  "
                    f"CPU: wrk {r.wrk_cpu_pct:3.0f}%  server {r.server_cpu_pct or 0:4.0f}%  "
                    f"other {other:3.0f}%" + ("  (noisy)" if noisy else ""),
                    flush=True,
                )
                if best is None or other < (best.other_cpu_pct or 0.0):
                    best = r
                if not noisy:
                    break
                if attempt < args.noisy_retries:
                    time.sleep(1)
            assert best is not None
            runs[c].append(best.as_dict())
    medians = {}
    for c, results in runs.items():
        medians[c] = {
            key: statistics.median(float(r[key] or 0.0) for r in results)
            for key in (
                "requests_per_s",
                "p50_us",
                "p99_us",
                "wrk_cpu_pct",
                "server_cpu_pct",
                "other_cpu_pct",
            )
        }
    return {"url": url, "runs": runs, "median": medians}


def check_answer(url: str, body: str, content_type: str, expected: float) -> float:
    """POST once with urllib; the answer must be 200 and match XGBoost in-process."""
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": content_type}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        status = response.status
        payload = response.read()
        answer_type = response.headers.get("Content-Type", "")
    if status != 200:
        raise BenchError(f"{url} answered {status}: {payload[:300]!r}")
    if "outputs" in payload.decode(errors="replace"):
        value = float(json.loads(payload)["outputs"][0]["data"][0])
    else:
        values = demo.parse_predictions(payload, answer_type)
        if values.shape != (1,):
            raise BenchError(f"{url}: expected one probability, got {payload[:300]!r}")
        value = float(values[0])
    if not abs(value - expected) <= TOLERANCE:
        raise BenchError(f"{url} answered {value}, XGBoost in-process says {expected}")
    return value


# --- servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def stopping(process: Managed) -> Iterator[Managed]:
    try:
        yield process
    finally:
        code = process.stop()
        # uvicorn re-raises SIGTERM after a graceful shutdown: -15 is a clean stop too.
        how = "" if code in (0, -signal.SIGTERM) else f" (exit code {code})"
        print(f"  stopped {process.name}{how}", flush=True)


def bench_modelhost(
    wrk: str, artifact: Path, row_csv: str, expected: float, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    home = work / "modelhost-home"
    home.mkdir()
    port = free_port()
    env = {**_clean_env(), "MODELHOST_LOG_LEVEL": "warning", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "modelhost", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--home", str(home)]
    base = f"http://127.0.0.1:{port}"
    print(f"starting modelhost: {' '.join(command)}", flush=True)
    with stopping(Managed("modelhost", command, work / "modelhost.log", env=env)) as server:
        server.wait_http_ok(f"{base}/ping", 60)
        sm, _ = demo.boto3_clients(base)
        t0 = time.perf_counter()
        demo.deploy(sm, artifact, instance_count=args.instances)
        print(
            f"  endpoint InService with {args.instances} instance(s) after "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        url = f"{base}/endpoints/{demo.ENDPOINT_NAME}/invocations"
        check_answer(url, row_csv, "text/csv", expected)
        script = write_script(work / "modelhost.lua", row_csv, "text/csv")
        series = run_series("modelhost", wrk, url, script, args, server.pid)
        series["settings"] = {"instances": args.instances, "env": _modelhost_env(env)}
        demo.undeploy(sm, say=print)
        return series


def bench_mlserver(
    wrk: str,
    model_bytes: bytes,
    row: list[float],
    expected: float,
    work: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    versions = _mlserver.ensure_venv()
    directory = work / "mlserver"
    settings, base = _mlserver.write_model_repository(directory, model_bytes, args.mlserver_workers)
    print(f"starting MLServer {versions['mlserver']}: mlserver start {directory}", flush=True)
    with stopping(_mlserver.start(directory, work / "mlserver.log")) as server:
        server.wait_http_ok(f"{base}/v2/health/ready", 180)
        server.wait_http_ok(f"{base}/v2/models/{_mlserver.MODEL_NAME}/ready", 60)
        url = f"{base}/v2/models/{_mlserver.MODEL_NAME}/infer"
        body = _mlserver.v2_request(row)
        check_answer(url, body, "application/json", expected)
        script = write_script(work / "mlserver.lua", body, "application/json")
        series = run_series("mlserver", wrk, url, script, args, server.pid)
        series["settings"] = {**settings, "OMP_NUM_THREADS": "1"}
        series["versions"] = versions
        return series


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELHOST_")}


def _modelhost_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("MODELHOST_") or k == "OMP_NUM_THREADS"}


# --- report -------------------------------------------------------------------------------


def report(results: dict[str, Any], connections: list[int]) -> str:
    ip = results["in_process"]
    lines = [
        "",
        "XGBoost in-process (baseline A, one thread): one-row inplace_predict "
        f"p50 {ip['one_row_p50_us']:.0f} µs, p99 {ip['one_row_p99_us']:.0f} µs, "
        f"{ip['one_row_calls_per_s']:,.0f} calls/s; batch of {ip['batch_rows']:,} rows "
        f"{ip['batch_rows_per_s_1_thread'] / 1e6:.2f} M rows/s (1 thread), "
        f"{ip['batch_rows_per_s_2_thread'] / 1e6:.2f} M rows/s (2 threads)",
        "",
        f"{'server':<10} {'conns':>5} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'wrk CPU%':>8} {'srv CPU%':>8} {'oth CPU%':>8} {'÷MLServer':>9} {'÷in-proc':>8}",
    ]
    servers = results["servers"]
    for name in ("modelhost", "mlserver"):
        if name not in servers:
            continue
        for c in connections:
            m = servers[name]["median"][c]
            vs_mlserver = "-"
            if name == "modelhost" and "mlserver" in servers:
                other = servers["mlserver"]["median"][c]["requests_per_s"]
                vs_mlserver = f"{m['requests_per_s'] / other:.2f}×"
            vs_in_process = f"{m['requests_per_s'] / ip['one_row_calls_per_s']:.2f}×"
            lines.append(
                f"{name:<10} {c:>5} {m['requests_per_s']:>9,.0f} {m['p50_us'] / 1e3:>7.2f} "
                f"{m['p99_us'] / 1e3:>7.2f} {m['wrk_cpu_pct']:>8.0f} {m['server_cpu_pct']:>8.0f} "
                f"{m['other_cpu_pct']:>8.0f} "
                f"{vs_mlserver:>9} {vs_in_process:>8}"
                + ("  noisy" if m["other_cpu_pct"] > NOISY_OTHER_CPU_PCT else "")
            )
    return "\n".join(lines)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # finally blocks stop the servers
    info = machine_info()
    info["busy_before_start_pct"] = round(busy_elsewhere_pct(1.0), 1)
    print(format_machine_info(info), flush=True)
    if info["busy_before_start_pct"] > 20:
        print(
            f"WARNING: the machine is already {info['busy_before_start_pct']:.0f}% busy "
            "(of one core) before the benchmark starts; results will be noisy",
            flush=True,
        )
    wrk = ""
    if not (args.skip_modelhost and args.skip_mlserver):
        wrk = ensure_wrk()
        info["wrk"] = info["wrk"] or "installed"
    results: dict[str, Any] = {
        "benchmark": "realtime",
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": info,
        "args": {k: v for k, v in vars(args).items()},
        "model": "churn XGBoost binary:logistic, 69 features, 100 trees, max_depth 5",
        "servers": {},
    }
    try:
        with tempfile.TemporaryDirectory(prefix="modelhost-bench-") as tmp:
            work = Path(tmp)
            print("\nbuilding the churn model (5,000 rows, 100 trees)", flush=True)
            data = churn.make_churn(5000, seed=0)
            train, test = data.split(test_fraction=0.2, seed=0)
            trained = churn.train_xgboost(train, num_round=100, seed=0, nthread=1)
            artifact = churn.write_xgboost_artifact(trained, work / "model")
            booster = churn.read_xgboost_artifact(artifact)  # what the servers load
            row = test.X[0]
            expected = float(booster.inplace_predict(row.reshape(1, -1))[0])
            row_csv = churn.csv_rows(row)[0]
            batch = churn.make_churn(10_000, seed=1).X

            print("\nbaseline A: XGBoost in-process", flush=True)
            results["in_process"] = bench_in_process(booster, row, batch)

            steps: list[tuple[str, Callable[[], dict[str, Any]]]] = []
            if not args.skip_modelhost:
                steps.append(
                    (
                        "modelhost",
                        lambda: bench_modelhost(wrk, artifact, row_csv, expected, work, args),
                    )
                )
            if not args.skip_mlserver:
                model_bytes = churn.xgboost_model_bytes(booster)
                steps.append(
                    (
                        "mlserver",
                        lambda: bench_mlserver(
                            wrk, model_bytes, row.tolist(), expected, work, args
                        ),
                    )
                )
            for name, step in steps:
                print(f"\n{name}", flush=True)
                results["servers"][name] = step()
                if name == "mlserver":
                    info["mlserver"] = results["servers"][name]["versions"]["mlserver"]
    except KeyboardInterrupt:
        print("\ninterrupted; every server was stopped", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    results["finished"] = datetime.now().isoformat(timespec="seconds")
    print(report(results, args.connections))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"realtime-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
