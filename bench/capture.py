"""Data capture's cost on the request path, in-process: the data plane with and without
capture at 100 % sampling, same process, alternating blocks (the machine is noisy: only
the same-run ratio means anything).

    python bench/capture.py [--requests 20000] [--blocks 10]
    python bench/capture.py --e2e [--rounds 6] [--duration 5] [--connections 8]

`--e2e` measures through HTTP instead: one modelhost, two endpoints of the churn XGBoost
model (one capturing 100 % of input and output to a local folder, one not), and wrk runs
alternating between them (ABBA...), so both see the same machine; it prints the median
req/s of each and their ratio.

The instance is a fake that answers at once, so the figure is the gateway's own work per
request (routing, metrics, answer) and what capture adds to it (one random draw, one
record object, one append); encoding and writing happen later, off the request path, and
are timed separately (the background writer's µs per record, to a local folder).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from modelhost.fleet.dataplane.plane import DataPlane, Invocation, Limits
from modelhost.resources.capture import CaptureConfig
from modelhost.routing.table import EndpointRoute, RoutingTable, VariantRoute
from modelhost.store.outputs import Locations
from modelhost.telemetry.capture import CaptureBuffer, CaptureWriter
from modelhost.telemetry.metrics import InvocationMetrics
from modelhost.testing.dataplane import FakeHealth, FakeRoutes, FakeTransport, answer, instance

ROW = b"100,25,265.1,110,197.4,99,244.7,91,10,3,1," + b"0," * 57 + b"0"


def plane(home: Path, capture: CaptureConfig | None) -> tuple[DataPlane, CaptureBuffer]:
    a = instance("a", 1)
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),), capture=capture)
    buffer = CaptureBuffer(10_000_000)
    limits = Limits(timeout_s=5.0, max_payload_bytes=6 << 20, model_busy_outstanding=8, home=home)
    p = DataPlane(
        FakeRoutes(RoutingTable({"ep": route})),
        FakeHealth(),
        FakeTransport({a.address: answer(body=b"0.0185", content_type=b"text/csv")}),
        __import__("random").random,
        lambda _name: None,
        InvocationMetrics(),
        limits,
        lambda e: f"arn:log:{e}",
        capture=buffer,
    )
    return p, buffer


async def block(p: DataPlane, n: int) -> float:
    forward = [(b"content-type", b"text/csv")]
    route = p.route("ep", "123456789012")
    started = time.perf_counter()
    for i in range(n):
        req = Invocation("ep", dict(forward), forward, ROW, None, None, time.perf_counter(), str(i))
        await p.invoke(route, req, [])
    p.core.http.calls.clear()  # type: ignore[attr-defined]
    return (time.perf_counter() - started) / n * 1e6


def e2e(args: argparse.Namespace) -> None:
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import stopping
    from _proc import Managed, free_port
    from _wrk import ensure_wrk, run_wrk, write_script
    from modelhost import demo
    from modelhost.testing import churn

    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = churn.make_churn(2000, seed=0)
        artifact = churn.write_xgboost_artifact(churn.train_xgboost(data), work / "model")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELHOST_")}
        env.update(MODELHOST_LOG_LEVEL="warning", OMP_NUM_THREADS="1")
        command = [sys.executable, "-m", "modelhost", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--home", str(work / "home"), "--no-auth"]
        with stopping(Managed("modelhost", command, work / "server.log", env=env)) as server:
            server.wait_http_ok(f"{base}/ping", 60)
            sm, _ = demo.boto3_clients(base)
            names = {"off": "capture-off", "on": "capture-on"}
            sm.create_model(
                ModelName="m",
                PrimaryContainer={"Image": demo.XGBOOST_IMAGE, "ModelDataUrl": str(artifact)},
                ExecutionRoleArn=demo.ROLE_ARN,
            )
            for key, name in names.items():
                extra = {}
                if key == "on":
                    extra["DataCaptureConfig"] = {
                        "EnableCapture": True,
                        "InitialSamplingPercentage": 100,
                        "DestinationS3Uri": str(work / "capture"),
                        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                    }
                variant = {
                    "VariantName": "AllTraffic",
                    "ModelName": "m",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
                sm.create_endpoint_config(
                    EndpointConfigName=name, ProductionVariants=[variant], **extra
                )
                sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
                sm.get_waiter("endpoint_in_service").wait(
                    EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
                )
            script = write_script(work / "row.lua", churn.csv_rows(data.X[:1])[0], "text/csv")
            rates: dict[str, list[float]] = {"off": [], "on": []}
            for r in range(args.rounds):
                order = ("off", "on") if r % 2 == 0 else ("on", "off")
                for key in order:
                    url = f"{base}/endpoints/{names[key]}/invocations"
                    res = run_wrk(wrk, url, script, args.connections, args.duration, server.pid)
                    rates[key].append(res.requests_per_s)
                    print(f"  round {r + 1} capture {key:>3}: {res.requests_per_s:8.0f} req/s")
            records = sum(
                len(p.read_text().splitlines()) for p in (work / "capture").rglob("*.jsonl")
            )
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(f"median req/s, capture off: {off:.0f}; capture 100%: {on:.0f}")
    print(f"throughput with capture: {on / off - 1:+.1%} (same run, alternating)")
    print(f"capture records written: {records}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--e2e", action="store_true", help="through HTTP with wrk")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if args.e2e:
        e2e(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        config = CaptureConfig(100, str(home / "capture"), True, True)
        off, _ = plane(home, None)
        on, buffer = plane(home, config)
        per = args.requests // args.blocks
        times: dict[str, list[float]] = {"off": [], "on": []}
        items = []
        for _ in range(args.blocks):
            times["off"].append(asyncio.run(block(off, per)))
            times["on"].append(asyncio.run(block(on, per)))
            items = buffer.drain()  # the writer drains every second in the gateway
        writer = CaptureWriter(CaptureBuffer(1), lambda u, d: Locations(None).write(u, d, "x"), 1)
        started = time.perf_counter()
        writer.write_batch(items)
        write_us = (time.perf_counter() - started) / max(len(items), 1) * 1e6
    off_us, on_us = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"data plane per request, capture off: {off_us:.2f} µs (median of {args.blocks} blocks)")
    print(f"data plane per request, capture 100%: {on_us:.2f} µs")
    print(f"added on the request path: {on_us - off_us:.2f} µs ({on_us / off_us - 1:+.1%})")
    print(f"background writer (encode + write, local folder): {write_us:.2f} µs per record")


if __name__ == "__main__":
    main()
