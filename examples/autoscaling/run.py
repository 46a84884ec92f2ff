"""Capacity that follows demand: the seeds' autoscaling code against modelhost, under a
stepped load, with the figures that matter.

    python examples/autoscaling/run.py [--target 70] [--max 3] [--no-ha]

Starts its own server with MODELHOST_SCALING_PERIOD_S=2 (one of AWS's minutes lasts two
seconds: TargetValue 70 means 35 invocations per second per instance, and ScaleOutCooldown
60 / ScaleInCooldown 300 last 2 s / 10 s), deploys the churn
XGBoost model on one instance, registers it (MinCapacity 1, MaxCapacity --max) with a
TargetTrackingScaling policy on SageMakerVariantInvocationsPerInstance, and drives a load
of 0 -> 1 -> 4 client threads -> 0. It prints the instance count second by second and:
the time from each load step to a new instance serving, failed requests during scale-out
and scale-in (boto3 without retries), and with HA on (the default) the time to replace an
instance killed with SIGKILL under load and what survives a SIGKILL of the gateway.
Exit status 0 when no request failed while instances came and went.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from modelhost.testing.churn import csv_rows, make_churn, train_xgboost, write_xgboost_artifact
from modelhost.testing.server import ModelhostServer

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
ENV = {
    "MODELHOST_SCALING_PERIOD_S": "2",
    "MODELHOST_HEALTH_CHECK_INTERVAL_S": "0.3",
    "MODELHOST_RECONCILE_INTERVAL_S": "0.2",
    "MODELHOST_SHUTDOWN_GRACE_S": "5",
}


class Load:
    """Client threads invoking the endpoint; `threads` is the load step, changed live.
    Every answer and failure is recorded with its time and the phase it fell in."""

    def __init__(self, server: ModelhostServer, name: str, row: str) -> None:
        self.server, self.name, self.row = server, name, row
        self.threads = 0
        self.phase = "idle"
        self.retries = False
        self.ok: Counter[int] = Counter()  # by second
        self.failed: Counter[str] = Counter()  # by phase
        self.retried = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.workers = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(8)
        ]

    def _run(self, index: int) -> None:
        plain = self.server.clients(retries={"max_attempts": 1, "mode": "standard"})[1]
        retrying = self.server.clients(retries={"max_attempts": 5, "mode": "standard"})[1]
        while not self.stop.is_set():
            if index >= self.threads:
                time.sleep(0.05)
                continue
            rt = retrying if self.retries else plain
            try:
                out = rt.invoke_endpoint(
                    EndpointName=self.name, ContentType="text/csv", Body=self.row
                )
                out["Body"].read()
                with self.lock:
                    self.ok[int(time.time())] += 1
                    self.retried += out["ResponseMetadata"].get("RetryAttempts", 0) > 0
            except Exception:
                with self.lock:
                    self.failed[self.phase] += 1
                time.sleep(0.05)

    def __enter__(self) -> Load:
        for w in self.workers:
            w.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for w in self.workers:
            w.join(timeout=30)


def counts(sm: Any, name: str) -> tuple[int, int, str]:
    desc = sm.describe_endpoint(EndpointName=name)
    v = desc["ProductionVariants"][0]
    return v["CurrentInstanceCount"], v["DesiredInstanceCount"], desc["EndpointStatus"]


def wait(sm: Any, name: str, test: Any, timeout_s: float, timeline: list[Any], load: Load) -> float:
    """Poll DescribeEndpoint until `test(current, desired)`; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            current, desired, status = counts(sm, name)
        except Exception:
            time.sleep(0.2)
            continue
        timeline.append((time.time(), load.threads, current, desired, status))
        if test(current, desired):
            return time.monotonic() - start
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout_s} s (last: {timeline[-1][2:]})")


def instance_pids(home: Path, name: str) -> list[int]:
    """The live instance processes of the endpoint: their output is one of its instance
    logs (`<home>/logs/<endpoint>/i-*.log`). Not their environment: an instance forked
    from its runtime's zygote shows the zygote's in /proc."""
    logs = home / "logs" / name
    out = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            output = Path(os.readlink(entry / "fd" / "1"))
            mine = output.is_relative_to(logs) and output.name.startswith("i-")
            if mine and (entry / "stat").read_text().split(")")[-1].split()[0] != "Z":
                out.append(int(entry.name))
        except OSError:
            continue
    return out


def print_timeline(timeline: list[Any], load: Load) -> None:
    """One row per second in which the load step, the counts or the status changed."""
    print("\n  second  threads  req/s  serving  desired  status")
    shown: dict[int, Any] = {}
    for t, threads, current, desired, status in timeline:
        shown[int(t)] = (threads, current, desired, status)
    first, last = min(shown), None
    for second in sorted(shown):
        row = shown[second]
        if row == last:
            continue
        last = row
        threads, current, desired, status = row
        print(
            f"  {second - first:>6}  {threads:>7}  {load.ok.get(second, 0):>5}  {current:>7}"
            f"  {desired:>7}  {status}  {'#' * current}"
        )


def scale(server: ModelhostServer, name: str, row: str, args: argparse.Namespace) -> int:
    sm = server.clients()[0]
    aas = server.client("application-autoscaling")
    resource = f"endpoint/{name}/variant/AllTraffic"
    # The seeds' cells, unchanged but for endpoint_url.
    aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        MinCapacity=1,
        MaxCapacity=args.max,
    )
    aas.put_scaling_policy(
        PolicyName="invocations",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": args.target,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleOutCooldown": 60,
            "ScaleInCooldown": 300,
        },
    )
    timeline: list[Any] = []
    figures: list[str] = []
    with Load(server, name, row) as load:
        try:
            steps(sm, name, load, timeline, figures, args)
            if not args.no_ha:
                ha(server, sm, name, load, timeline, figures, args)
        except TimeoutError as exc:
            figures.append(f"stopped: {exc}")
    print_timeline(timeline, load)
    print("\nactivities (oldest first):")
    acts = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=resource)
    for a in reversed(acts["ScalingActivities"]):
        print(f"  {a['StatusCode']:<10} {a['Description']}  ({a['Cause'][:60]}...)")
    print("\nfigures (one run on this machine; a shared machine is noisy):")
    for line in figures:
        print(f"  {line}")
    print(f"  failed requests during scale-out: {load.failed['scale-out']} (no retries)")
    print(f"  failed requests during scale-in: {load.failed['scale-in']} (no retries)")
    failed = load.failed["scale-out"] or load.failed["scale-in"]
    return 1 if failed or figures[-1].startswith("stopped") else 0


def steps(
    sm: Any, name: str, load: Load, timeline: list[Any], figures: list[str], args: Any
) -> None:
    """0 -> 1 -> 4 client threads, then 0: the count follows, up and back down."""
    for threads in (1, 4):
        load.threads, load.phase = threads, "scale-out"
        before = counts(sm, name)[0]
        if before >= args.max:
            continue
        took = wait(sm, name, lambda c, d, b=before: c > b, 90, timeline, load)
        figures.append(
            f"load step to {threads} thread(s): {before} -> {counts(sm, name)[0]} instances "
            f"serving after {took:.1f} s"
        )
        wait(sm, name, lambda c, d: c == d, 90, timeline, load)
    wait(sm, name, lambda c, d: c >= args.max, 90, timeline, load)
    time.sleep(2)
    load.threads, load.phase = 0, "scale-in"
    took = wait(sm, name, lambda c, d: c == 1 and d == 1, 120, timeline, load)
    figures.append(f"load stopped: back to 1 instance after {took:.1f} s")


def ha(
    server: ModelhostServer,
    sm: Any,
    name: str,
    load: Load,
    timeline: list[Any],
    figures: list[str],
    args: argparse.Namespace,
) -> None:
    """SIGKILL an instance, then the gateway, under load (boto3 retrying, as by default)."""
    aas = server.client("application-autoscaling")
    resource = f"endpoint/{name}/variant/AllTraffic"
    aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        MinCapacity=2,
        MaxCapacity=2,  # held at 2, so the counts below are the kills' doing alone
    )
    wait(sm, name, lambda c, d: c == 2 and d == 2, 90, timeline, load)
    load.threads, load.phase, load.retries = 2, "instance-kill", True
    time.sleep(2)
    before = set(instance_pids(server.home, name))
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()

    def replaced(current: int, _desired: int) -> bool:
        # A new process in the dead one's place, counted only once it answered /ping and
        # is in routing (the dip to 1 may be too short for DescribeEndpoint to show).
        now = set(instance_pids(server.home, name))
        return current == 2 and victim not in now and bool(now - before)

    wait(sm, name, replaced, 60, timeline, load)
    figures.append(
        f"instance killed (SIGKILL) under load: 2 serving again after "
        f"{time.monotonic() - killed:.1f} s; failed requests "
        f"{load.failed['instance-kill']} (boto3 retrying)"
    )
    load.phase = "gateway-kill"
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.proc = None
    down = time.monotonic()
    server.start(timeout_s=60)
    wait(sm, name, lambda c, d: c == 2 and d == 2, 120, timeline, load)
    policies = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)
    activities = aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=resource)
    figures.append(
        f"gateway killed (SIGKILL) and restarted: InService with 2 instances after "
        f"{time.monotonic() - down:.1f} s; policies kept: "
        f"{[p['PolicyName'] for p in policies['ScalingPolicies']]}; activities kept: "
        f"{len(activities['ScalingActivities'])}; failed requests while it was down "
        f"{load.failed['gateway-kill']} (boto3 retrying; the gateway is the one door)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--target", type=float, default=70.0, help="TargetValue (per period)")
    parser.add_argument("--max", type=int, default=3, help="MaxCapacity")
    parser.add_argument("--no-ha", action="store_true", help="skip the SIGKILL figures")
    args = parser.parse_args()
    data = make_churn(2000, seed=0)
    row = csv_rows(data.X[:1])[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        artifact = write_xgboost_artifact(train_xgboost(data, num_round=50, seed=0), work)
        with ModelhostServer(work / "home", env=ENV) as server:
            sm = server.clients()[0]
            name = f"autoscaling-{uuid.uuid4().hex[:6]}"
            sm.create_model(
                ModelName=name, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(artifact)}
            )
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
                EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
            )
            return scale(server, name, row, args)


if __name__ == "__main__":
    sys.exit(main())
