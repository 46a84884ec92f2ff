"""Native vs compiled tree models: one-row latency and batch rows/s, in-process and through an
endpoint, for the churn XGBoost model (100 trees) and a 500-tree LightGBM model.

    python bench/compile.py [--calls 5000] [--batch 10000] [--requests 1000] [--runs 3]
                            [--skip-endpoint]

1. Compiles each model in-process as a compilation job does (`compile.build`, input shape
   [1, 69]): Treelite + TL2cgen to C built with gcc, and ONNX; prints both targets'
   exactness and measured latency and the one chosen.
2. In-process: `--calls` one-row predictions (p50, p99, calls/s) and a `--batch`-row
   batch (rows/s), native (`Booster.inplace_predict`, LightGBM `Booster.predict` on one
   thread) vs the compiled runtime's `predict` (what the instance calls).
3. Through an endpoint (`modelhost serve` on 127.0.0.1, auth off): the native model with
   its framework image and the compiled artifact with the Neo image, `--requests`
   sequential one-row invocations on one keep-alive connection (p50, p99), and 1,000-row
   CSV invocations (rows/s). Medians over `--runs`.

The goal of issue 17: compiled ≥ 2× native on one row. JSON goes to bench/results/.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _machine import format_machine_info, machine_info, package_version
from modelhost.compile.build import CompileRequest, compile_model
from modelhost.frameworks.compiled import CompiledRuntime
from modelhost.testing import churn
from modelhost.testing.server import ModelhostServer

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
NEO_IMAGE = "785573368785.dkr.ecr.us-east-1.amazonaws.com/xgboost-neo:latest"
ROLE = "arn:aws:iam::123456789012:role/bench"


def one_row(predict: Any, rows: np.ndarray, calls: int) -> dict[str, float]:
    times = []
    for i in range(calls):
        row = rows[i % len(rows) : i % len(rows) + 1]
        t0 = time.perf_counter_ns()
        predict(row)
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return {
        "p50_us": times[len(times) // 2] / 1000,
        "p99_us": times[int(len(times) * 0.99)] / 1000,
        "calls_per_s": 1e9 / statistics.mean(times),
    }


def batch_rate(predict: Any, batch: np.ndarray, runs: int) -> float:
    samples = []
    for _ in range(max(3, runs)):
        t0 = time.perf_counter()
        predict(batch)
        samples.append(len(batch) / (time.perf_counter() - t0))
    return statistics.median(samples)


def build_models(tmp: Path) -> dict[str, dict[str, Any]]:
    import lightgbm as lgb

    data = churn.make_churn(n_rows=5000, seed=7)
    booster = churn.train_xgboost(data, num_round=100, seed=0)
    xgb_dir = tmp / "xgb"
    xgb_dir.mkdir()
    (xgb_dir / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}
    lgbm = lgb.train(params, lgb.Dataset(data.X, data.y), num_boost_round=500)
    lgb_dir = tmp / "lgb"
    lgb_dir.mkdir()
    (lgb_dir / "model.txt").write_text(lgbm.model_to_string())
    return {
        "churn-xgboost-100": {
            "dir": xgb_dir,
            "framework": "XGBOOST",
            "native": lambda x: booster.inplace_predict(x),
            "image": XGBOOST_IMAGE,
            "X": data.X,
        },
        "lightgbm-500": {
            "dir": lgb_dir,
            "framework": "SKLEARN",
            "native": lambda x: lgbm.predict(x, num_threads=1),
            "image": "lightgbm",
            "X": data.X,
        },
    }


def _tar(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return out


def endpoint_rows(srv: ModelhostServer, name: str, rows: np.ndarray, args: Any) -> dict[str, float]:
    path = f"/endpoints/{name}/invocations"
    headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
    bodies = [churn.csv_body(rows[i : i + 1]).encode() for i in range(200)]
    big = churn.csv_body(rows[:1000]).encode()
    p50s, p99s, rates = [], [], []
    for _ in range(args.runs):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        times = []
        for i in range(args.requests):
            t0 = time.perf_counter_ns()
            conn.request("POST", path, body=bodies[i % len(bodies)], headers=headers)
            resp = conn.getresponse()
            resp.read()
            times.append(time.perf_counter_ns() - t0)
            assert resp.status == 200, resp.status
        times.sort()
        p50s.append(times[len(times) // 2] / 1000)
        p99s.append(times[int(len(times) * 0.99)] / 1000)
        t0 = time.perf_counter()
        for _ in range(20):
            conn.request("POST", path, body=big, headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
        rates.append(20_000 / (time.perf_counter() - t0))
        conn.close()
    return {
        "p50_us": statistics.median(p50s),
        "p99_us": statistics.median(p99s),
        "batch_rows_per_s": statistics.median(rates),
    }


def deploy(sm: Any, name: str, artifact: Path, image: str) -> None:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": image, "ModelDataUrl": str(artifact)},
        ExecutionRoleArn=ROLE,
    )
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
    )


def _print_row(label: str, r: dict[str, float]) -> None:
    extra = f"  batch {r['batch_rows_per_s']:>12,.0f} rows/s" if "batch_rows_per_s" in r else ""
    print(f"  {label:<28} p50 {r['p50_us']:8.1f} µs  p99 {r['p99_us']:8.1f} µs{extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-endpoint", action="store_true")
    args = parser.parse_args(argv)
    info = machine_info()
    info.update({k: package_version(k) for k in ("lightgbm", "treelite", "tl2cgen", "onnxruntime")})
    print(format_machine_info(info))
    print(
        f"compilers: treelite {info['treelite']}, tl2cgen {info['tl2cgen']}, "
        f"onnxruntime {info['onnxruntime']}, lightgbm {info['lightgbm']}"
    )
    results: dict[str, Any] = {"machine": info, "args": vars(args), "models": {}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        models = build_models(tmp)
        for name, m in models.items():
            t0 = time.perf_counter()
            out = tmp / f"{name}-compiled"
            marker = compile_model(CompileRequest(m["dir"], m["framework"], [1, 69], out, 900))
            compile_s = time.perf_counter() - t0
            runtime = CompiledRuntime()
            runtime.load(out)
            rows = np.ascontiguousarray(m["X"][:2000], dtype=runtime.input_dtype)
            batch = np.ascontiguousarray(
                np.resize(m["X"], (args.batch, m["X"].shape[1])), dtype=runtime.input_dtype
            )
            native_rows = np.ascontiguousarray(m["X"][:2000])
            native_batch = np.ascontiguousarray(np.resize(m["X"], batch.shape))
            r: dict[str, Any] = {
                "compile_s": compile_s,
                "chosen": marker["backend"],
                "targets": marker["targets"],
                "in_process": {
                    "native": {
                        **one_row(m["native"], native_rows, args.calls),
                        "batch_rows_per_s": batch_rate(m["native"], native_batch, args.runs),
                    },
                    "compiled": {
                        **one_row(runtime.predict, rows, args.calls),
                        "batch_rows_per_s": batch_rate(runtime.predict, batch, args.runs),
                    },
                },
            }
            diff = np.abs(
                np.asarray(runtime.predict(batch[:2000])).ravel()
                - np.asarray(m["native"](native_batch[:2000])).ravel()
            ).max()
            r["max_abs_diff"] = float(diff)
            m["compiled_dir"] = out
            results["models"][name] = r
        if not args.skip_endpoint:
            env = {"MODELHOST_AUTH_ENABLED": "false", "MODELHOST_LOG_LEVEL": "warning"}
            with ModelhostServer(tmp / "home", env=env) as srv:
                sm, _ = srv.clients()
                for name, m in models.items():
                    native_art = _tar(m["dir"], tmp / f"{name}-native.tar.gz")
                    compiled_art = _tar(m["compiled_dir"], tmp / f"{name}-compiled.tar.gz")
                    deploy(sm, f"{name}-native", native_art, m["image"])
                    deploy(sm, f"{name}-neo", compiled_art, NEO_IMAGE)
                    rows = m["X"][:200]
                    results["models"][name]["endpoint"] = {
                        "native": endpoint_rows(srv, f"{name}-native", rows, args),
                        "compiled": endpoint_rows(srv, f"{name}-neo", rows, args),
                    }
    report(results)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"compile-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {path}")
    return 0


def report(results: dict[str, Any]) -> None:
    for name, r in results["models"].items():
        print(f"\n{name}: compiled in {r['compile_s']:.1f} s, serving '{r['chosen']}'")
        for target, t in r["targets"].items():
            detail = (
                f"{t['LatencyMicros']:.1f} µs/row, {t['SpeedupVsNative']:.1f}× native"
                if t["Exact"]
                else f"not exact: {t.get('Reason')}"
            )
            print(f"  target {target:<5} exact={t['Exact']!s:<5} {detail}")
        print(f"  max |compiled - native| on 2,000 rows: {r['max_abs_diff']:.2e}")
        ip = r["in_process"]
        print(" in-process, one row per call (one thread):")
        _print_row("native", ip["native"])
        _print_row("compiled", ip["compiled"])
        speed = ip["native"]["p50_us"] / ip["compiled"]["p50_us"]
        batch = ip["compiled"]["batch_rows_per_s"] / ip["native"]["batch_rows_per_s"]
        print(f"  one row ÷: {speed:.1f}×   batch rows/s ×: {batch:.1f}")
        goal = "MET" if speed >= 2 else "NOT MET"
        print(f"  goal (compiled ≥ 2× native on one row): {goal}")
        if "endpoint" in r:
            ep = r["endpoint"]
            print(" through an endpoint (sequential keep-alive, CSV):")
            _print_row("native", ep["native"])
            _print_row("compiled (Neo image)", ep["compiled"])
            print(
                f"  one row ÷: {ep['native']['p50_us'] / ep['compiled']['p50_us']:.2f}×   "
                f"batch rows/s ×: "
                f"{ep['compiled']['batch_rows_per_s'] / ep['native']['batch_rows_per_s']:.2f}"
            )


if __name__ == "__main__":
    sys.exit(main())
