"""The gateway → instance hop alone: Unix domain socket vs loopback TCP, interleaved.

    python bench/hop.py [--requests 4000] [--block 200] [--rounds 3] [--concurrency 1]

Starts one real built-in instance of the churn XGBoost model the way the gateway does
(`FleetManager`, so it listens on its TCP port and on its Unix socket) and sends it
sequential requests with the gateway's own client (`fleet/http1.py`, one keep-alive
connection per address) from this process, alternating blocks of `--block` requests
between the two addresses so both see the same machine (this benchmark was written on a
shared machine whose other load moved wrk figures by 3x). Two paths: `GET /ping` (the
hop and the HTTP stacks only) and `POST /invocations` with one CSV row (plus decode,
predict, encode). `--concurrency N` keeps N requests in flight (N connections, as the
gateway under N clients; the instance batches them). Prints, per path and address kind:
requests/s, latency p50/p99 and the CPU time per request of the client (this process:
the gateway's side) and of the instance (`/proc/<pid>/stat`), with the unix/tcp ratios.
Results go to bench/results/hop-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.fleet.manager import FleetManager
from modelhost.routing.table import Address
from modelhost.settings import Settings
from modelhost.testing import churn

RESULTS_DIR = Path(__file__).resolve().parent / "results"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Series:
    """Latencies and CPU seconds of one (path, address kind)."""

    def __init__(self) -> None:
        self.latencies_us: list[float] = []
        self.wall_s = 0.0
        self.client_cpu_s = 0.0
        self.instance_cpu_s = 0.0

    def summary(self) -> dict[str, float]:
        n = len(self.latencies_us)
        lat = np.array(self.latencies_us)
        return {
            "requests": n,
            "requests_per_s": n / self.wall_s,
            "p50_us": float(np.percentile(lat, 50)),
            "p99_us": float(np.percentile(lat, 99)),
            "client_cpu_us": self.client_cpu_s / n * 1e6,
            "instance_cpu_us": self.instance_cpu_s / n * 1e6,
        }


async def _block(
    manager: FleetManager, address: Address, request: tuple[bytes, bytes, Any, bytes], n: int,
    concurrency: int, pid: int, series: Series,
) -> None:  # fmt: skip
    method, path, headers, body = request
    http = manager.client.http

    async def client(count: int) -> None:
        for _ in range(count):
            t0 = time.perf_counter_ns()
            status, _, _ = await http.request(address, method, path, headers, body, 10.0)
            series.latencies_us.append((time.perf_counter_ns() - t0) / 1e3)
            if status != 200:
                raise SystemExit(f"{path.decode()} answered {status}")

    cpu0, inst0, wall0 = time.process_time(), _cpu_s(pid), time.perf_counter()
    await asyncio.gather(*(client(max(1, n // concurrency)) for _ in range(concurrency)))
    series.wall_s += time.perf_counter() - wall0
    series.client_cpu_s += time.process_time() - cpu0
    series.instance_cpu_s += _cpu_s(pid) - inst0


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = churn.make_churn(3000, seed=1)
    artifact = churn.write_xgboost_artifact(churn.train_xgboost(data), work / "model")
    row = churn.csv_rows(data.X[0])[0].encode()
    manager = FleetManager(Settings(home=work / "home", zygote=False))
    model = {"PrimaryContainer": {"Image": XGBOOST_IMAGE, "ModelDataUrl": str(artifact)}}
    requests = {
        "ping": (b"GET", b"/ping", [], b""),
        "invocations": (b"POST", b"/invocations", [(b"content-type", b"text/csv")], row),
    }
    out: dict[str, Any] = {}
    try:
        fleet = await manager.start_fleet("hop", "AllTraffic", "m", model, 1)
        (inst,) = fleet.serving()
        addresses = {"unix": inst.address, "tcp": inst.tcp_address}
        if inst.address.kind != "unix":
            raise SystemExit("the instance has no Unix socket (MODELHOST_INSTANCE_UNIX_SOCKETS?)")
        for name, request in requests.items():
            series = {kind: Series() for kind in addresses}
            for address in addresses.values():  # warm up both connections
                await _block(manager, address, request, 300, args.concurrency, inst.pid, Series())
            for _ in range(args.rounds):
                for _ in range(max(1, args.requests // args.block)):
                    for kind, address in addresses.items():
                        await _block(
                            manager, address, request, args.block, args.concurrency, inst.pid,
                            series[kind],
                        )  # fmt: skip
            out[name] = {kind: s.summary() for kind, s in series.items()}
    finally:
        await manager.close()
    return out


def report(results: dict[str, Any]) -> str:
    lines = [
        f"{'path':<12} {'hop':<5} {'requests':>8} {'req/s':>7} {'p50 µs':>8} {'p99 µs':>8} "
        f"{'client CPU µs':>13} {'instance CPU µs':>15}"
    ]
    for path, kinds in results.items():
        for kind, s in kinds.items():
            lines.append(
                f"{path:<12} {kind:<5} {s['requests']:>8} {s['requests_per_s']:>7,.0f} "
                f"{s['p50_us']:>8.1f} {s['p99_us']:>8.1f} "
                f"{s['client_cpu_us']:>13.1f} {s['instance_cpu_us']:>15.1f}"
            )
        u, t = kinds["unix"], kinds["tcp"]
        lines.append(
            f"{path:<12} unix/tcp: req/s {u['requests_per_s'] / t['requests_per_s']:.2f}, "
            f"p50 {u['p50_us'] / t['p50_us']:.2f}, client CPU "
            f"{u['client_cpu_us'] / t['client_cpu_us']:.2f}, instance CPU "
            f"{u['instance_cpu_us'] / t['instance_cpu_us']:.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="per path and kind per round")
    parser.add_argument("--block", type=int, default=200, help="requests before switching")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-hop-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(report(results))
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"hop-{datetime.now():%Y%m%d-%H%M%S}.json"
    doc = {"args": vars(args), "load_average": load, "results": results}
    path.write_text(json.dumps(doc, indent=2))
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
