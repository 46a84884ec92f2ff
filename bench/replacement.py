"""Instance replacement: kill -9 of a real-time instance under load, until a replacement serves.

    python bench/replacement.py [--runs 5] [--instances 2] [--threads 2] [--modes zygote,spawn]

The churn XGBoost model (69 features, 100 trees) on a real-time endpoint of `--instances`
instances, under a bounded request loop (`--threads` boto3 clients invoking one row each,
retrying as boto3 does by default). Each run kills one instance with SIGKILL and times
from the kill until a replacement process exists, the dead one is gone and
DescribeEndpoint's CurrentInstanceCount is back to `--instances` (a variant counts only
instances that answered /ping and are in the routing table). Then it waits for the load to
settle before the next run.

Modes, each on its own server with the default settings (health check every 2 s, control
loop every 1 s): `zygote` (the default: instances forked from the runtime's warm zygote)
and `spawn` (`MODELHOST_ZYGOTE=false`: a fresh interpreter per instance). Run it with
another source tree on PYTHONPATH to measure that version (instances are found by their
log, `<home>/logs/<endpoint>/i-*.log`, which every version writes). Prints machine info,
each run and medians, and the failed requests of the loop; the machine is shared and
noisy, so compare the ratios of one run, not absolute numbers across runs. Results go to
bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _machine import format_machine_info, machine_info
from modelhost.testing import churn
from modelhost.testing.server import ModelhostServer

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
GOAL_S = 2.0
MODES = {"zygote": "true", "spawn": "false"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="kills per mode (median)")
    parser.add_argument("--instances", type=int, default=2, help="InitialInstanceCount")
    parser.add_argument("--threads", type=int, default=2, help="client threads of the load")
    parser.add_argument("--modes", default="zygote,spawn", help="zygote and/or spawn")
    return parser.parse_args(argv)


def instance_pids(home: Path, endpoint: str) -> set[int]:
    """The endpoint's instance processes: their stdout is an instance log of this home."""
    logs = home / "logs" / endpoint
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            output = Path(os.readlink(entry / "fd" / "1"))
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if output.is_relative_to(logs) and output.name.startswith("i-") and state != "Z":
            pids.add((int(entry.name), int(ppid)))
    # An instance's own workers (its children) share its log: keep the instances.
    return {pid for pid, ppid in pids if ppid not in {p for p, _ in pids}}


class Load:
    """`threads` clients invoking until stopped; counts answers and failures."""

    def __init__(self, server: ModelhostServer, name: str, row: str, threads: int) -> None:
        self.server, self.name, self.row = server, name, row
        self.ok = 0
        self.failed = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        rt = self.server.clients(retries={"max_attempts": 5, "mode": "standard"})[1]
        while not self.stop.is_set():
            try:
                out = rt.invoke_endpoint(
                    EndpointName=self.name, ContentType="text/csv", Body=self.row
                )
                out["Body"].read()
                with self.lock:
                    self.ok += 1
            except Exception:
                with self.lock:
                    self.failed += 1
                time.sleep(0.05)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def wait_answers(self, count: int, timeout_s: float = 60.0) -> None:
        target = self.ok + count
        deadline = time.monotonic() + timeout_s
        while self.ok < target:
            if time.monotonic() > deadline:
                raise TimeoutError("the load got no answers")
            time.sleep(0.01)


def _serving(sm: Any, name: str) -> int:
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    return int(variant["CurrentInstanceCount"])


def one_kill(sm: Any, home: Path, name: str, instances: int, load: Load) -> float:
    """Kill one instance; seconds until a replacement serves in its place."""
    deadline = time.monotonic() + 120
    while len(before := instance_pids(home, name)) != instances or _serving(sm, name) != instances:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the endpoint did not settle at {instances} instances")
        time.sleep(0.05)
    load.wait_answers(20)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    killed = time.perf_counter()
    while True:
        now = instance_pids(home, name)
        if victim not in now and now - before and _serving(sm, name) == instances:
            return time.perf_counter() - killed
        if time.perf_counter() - killed > 120:
            raise TimeoutError("the killed instance was not replaced")
        time.sleep(0.01)


def measure(mode: str, args: argparse.Namespace, artifact: Path, row: str) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="replacement-bench-"))
    env = {"MODELHOST_ZYGOTE": MODES[mode], "MODELHOST_LOG_LEVEL": "warning"}
    try:
        with ModelhostServer(home, env=env) as server:
            sm = server.clients()[0]
            name = f"replace-{mode}"
            container = {"Image": IMAGE, "ModelDataUrl": str(artifact)}
            sm.create_model(ModelName=name, PrimaryContainer=container)
            sm.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": name,
                        "InitialInstanceCount": args.instances,
                        "InstanceType": "ml.m5.large",
                    }
                ],
            )
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 600}
            )
            with Load(server, name, row, args.threads) as load:
                times = []
                for i in range(args.runs):
                    took = one_kill(sm, home, name, args.instances, load)
                    times.append(took)
                    print(f"  {mode:7} kill {i + 1}: replaced in {took:6.2f} s")
                load.wait_answers(20)
            return {
                "mode": mode,
                "replacement_s": times,
                "median_s": statistics.median(times),
                "answered": load.ok,
                "failed": load.failed,
            }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print(format_machine_info(info))
    print("note: a shared, noisy machine; compare the ratios within this run\n")
    work = Path(tempfile.mkdtemp(prefix="replacement-bench-model-"))
    data = churn.make_churn()
    booster = churn.train_xgboost(data)
    artifact = churn.write_xgboost_artifact(booster, work)
    row = ",".join(repr(float(v)) for v in data.X[0])
    modes = [m for m in args.modes.split(",") if m]
    results = [measure(mode, args, artifact, row) for mode in modes]
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nkill -9 to replacement serving, median of {args.runs}, under load "
        f"({args.threads} threads, {args.instances} instances):"
    )
    for r in results:
        print(
            f"  {r['mode']:7} {r['median_s']:6.2f} s   (answered {r['answered']}, "
            f"failed {r['failed']} with boto3 retrying)"
        )
    by_mode = {r["mode"]: r["median_s"] for r in results}
    if len(by_mode) == 2:
        print(f"  zygote / spawn: {by_mode['zygote'] / by_mode['spawn']:.2f}")
    if "zygote" in by_mode:
        met = by_mode["zygote"] <= GOAL_S
        print(f"goal: replacement <= {GOAL_S:.0f} s: {'met' if met else 'NOT met'}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"replacement-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"machine": info, "args": vars(args), "results": results}, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
