"""Serial pipeline benchmark: preprocess → XGBoost in one call vs its steps and vs one model.

    python bench/pipeline.py [--duration 5] [--runs 3] [--connections 1,8]

Builds examples/pipeline (a scikit-learn one-hot preprocessing container in script mode
and the churn XGBoost model), starts `modelhost serve` on 127.0.0.1 and deploys three
endpoints, one instance each: the XGBoost model alone (baseline: the client sends encoded
features), the Serial pipeline (the client sends a raw row), and the same two containers
in Direct mode. wrk loads each with one row per request; a sequential keep-alive client
then compares the pipeline with the client calling both steps itself. Prints medians of
requests/s, p50 and p99, the ratios, and the mean ContainerLatency of each pipeline step
from /metrics. Results go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import importlib.util
import json
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib

import _wrk
from _machine import format_machine_info, machine_info
from _proc import busy_elsewhere_pct
from modelhost.testing.server import ModelhostServer, boto3_clients

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
EXAMPLE = BENCH_DIR.parent / "examples" / "pipeline" / "run.py"
TARGET = "X-Amzn-SageMaker-Target-Container-Hostname"
_LATENCY = re.compile(
    r'^ContainerLatency_(sum|count)\{ContainerName="([^"]+)",EndpointName="([^"]+)"[^}]*\} (\S+)$',
    re.M,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median)")
    parser.add_argument("--connections", default="1,8", help="comma-separated (default 1,8)")
    parser.add_argument("--calls", type=int, default=2000, help="sequential client calls")
    return parser.parse_args(argv)


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("pipeline_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def create(sm: Any, name: str, members: dict[str, Any]) -> None:
    sm.create_model(ModelName=name, **members)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 240}
    )


def lua(path: Path, body: str, target: str | None) -> Path:
    _wrk.write_script(path, body, "text/csv")
    if target:
        text = path.read_text().replace(
            'wrk.headers["Content-Type"] = "text/csv"',
            f'wrk.headers["Content-Type"] = "text/csv"\nwrk.headers["{TARGET}"] = "{target}"',
        )
        path.write_text(text)
    return path


def sequential_us(port: int, steps: list[tuple[str, str | None]], body: str, calls: int) -> float:
    """Median µs of one client doing `steps` in a row per call (each step's answer is
    the next step's body), over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples: list[float] = []
    for i in range(calls + 100):
        started = time.perf_counter_ns()
        payload, ctype = body.encode(), "text/csv"
        for path, target in steps:
            headers = {"Content-Type": ctype}
            if target:
                headers[TARGET] = target
            conn.request("POST", path, payload, headers)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("Content-Type") or ctype
            if resp.status != 200:
                raise _wrk.BenchError(f"{path} {target}: {resp.status} {payload[:200]!r}")
        if i >= 100:  # warm-up excluded
            samples.append((time.perf_counter_ns() - started) / 1e3)
    conn.close()
    return statistics.median(samples)


def container_latency_means(url: str, endpoint: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for kind, host, ep, value in _LATENCY.findall(text):
        if ep == endpoint:
            (sums if kind == "sum" else counts)[host] = float(value)
    return {h: sums[h] / counts[h] for h in sums if counts.get(h)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    connections = [int(c) for c in args.connections.split(",")]
    info = machine_info()
    print(format_machine_info(info), flush=True)
    busy = busy_elsewhere_pct()
    if busy > 20:
        print(f"warning: other processes use {busy:.0f}% of a core; figures will be noisy")
    wrk = _wrk.ensure_wrk()
    example = load_example()
    results: dict[str, Any] = {"machine": info, "busy_elsewhere_pct": busy, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pre_artifact, xgb_artifact, raw_body, _ = example.build(work)
        raw_row = raw_body.splitlines()[0] + "\n"
        preprocess = importlib.import_module("churn_preprocess")  # on sys.path via run.py
        preprocessor = joblib.load(work / "preprocess" / "model.joblib")  # written by build()
        features_row = preprocess.to_csv(preprocess.transform(preprocessor, raw_row))
        pre = {"ContainerHostname": "preprocess", "Image": example.SKLEARN_IMAGE}
        xgb = {"ContainerHostname": "xgboost", "Image": example.XGBOOST_IMAGE}
        pre["ModelDataUrl"], xgb["ModelDataUrl"] = str(pre_artifact), str(xgb_artifact)
        # Authentication off, as in bench/realtime.py: wrk replays unsigned requests.
        with ModelhostServer(work / "home", env={"MODELHOST_AUTH_ENABLED": "false"}) as server:
            sm, _ = boto3_clients(server.url)
            alone = {k: v for k, v in xgb.items() if k != "ContainerHostname"}
            create(sm, "xgb-only", {"PrimaryContainer": alone})
            for name, mode in (("pipeline", "Serial"), ("direct", "Direct")):
                create(
                    sm,
                    name,
                    {"Containers": [pre, xgb], "InferenceExecutionConfig": {"Mode": mode}},
                )
            cases = {
                "xgboost alone (features)": ("xgb-only", features_row, None),
                "pipeline (raw row)": ("pipeline", raw_row, None),
                "direct: preprocess only": ("direct", raw_row, "preprocess"),
                "direct: xgboost only": ("direct", features_row, "xgboost"),
            }
            port = int(server.url.rsplit(":", 1)[1])
            for label, (endpoint, body, target) in cases.items():
                url = f"{server.url}/endpoints/{endpoint}/invocations"
                script = lua(work / f"{endpoint}-{target}.lua", body.rstrip("\n"), target)
                _wrk.run_wrk(wrk, url, script, 8, 2.0)  # warm-up
                per_c: dict[str, Any] = {}
                for c in connections:
                    runs = [
                        _wrk.run_wrk(wrk, url, script, c, args.duration) for _ in range(args.runs)
                    ]
                    per_c[str(c)] = {
                        "requests_per_s": statistics.median(r.requests_per_s for r in runs),
                        "p50_us": statistics.median(r.p50_us for r in runs),
                        "p99_us": statistics.median(r.p99_us for r in runs),
                    }
                results["cases"][label] = per_c
            results["container_latency_mean_us"] = container_latency_means(server.url, "pipeline")
            results["sequential_p50_us"] = {
                "pipeline, one call": sequential_us(
                    port, [("/endpoints/pipeline/invocations", None)], raw_row, args.calls
                ),
                "both steps called by the client": sequential_us(
                    port,
                    [
                        ("/endpoints/direct/invocations", "preprocess"),
                        ("/endpoints/direct/invocations", "xgboost"),
                    ],
                    raw_row,
                    args.calls,
                ),
            }
    print(report(results, connections))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"pipeline-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")
    return 0


def report(results: dict[str, Any], connections: list[int]) -> str:
    lines = [
        "",
        "case                          "
        + "".join(f"  c={c:<3} req/s    p50 µs    p99 µs" for c in connections),
    ]
    for label, per_c in results["cases"].items():
        row = f"{label:<30}"
        for c in connections:
            r = per_c[str(c)]
            row += f"  {r['requests_per_s']:>11,.0f}  {r['p50_us']:>8,.0f}  {r['p99_us']:>8,.0f}"
        lines.append(row)
    base = results["cases"]["xgboost alone (features)"]
    pipe = results["cases"]["pipeline (raw row)"]
    for c in connections:
        ratio = pipe[str(c)]["requests_per_s"] / base[str(c)]["requests_per_s"]
        lines.append(f"pipeline / xgboost alone, req/s at c={c}: {ratio:.2f}")
    seq = results["sequential_p50_us"]
    one, two = seq["pipeline, one call"], seq["both steps called by the client"]
    lines.append(
        f"sequential p50: pipeline {one:,.0f} µs, both steps by the client {two:,.0f} µs "
        f"(pipeline saves {two - one:,.0f} µs, ratio {one / two:.2f})"
    )
    means = ", ".join(f"{h} {v:,.0f} µs" for h, v in results["container_latency_mean_us"].items())
    lines.append(f"mean ContainerLatency of the pipeline's steps: {means}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
