"""The gateway's own CPU per InvokeEndpoint, in process, against an instant fake instance.

    python bench/gateway_path.py [--requests 10000] [--repeats 9]
    python bench/gateway_path.py --wrk [--connections 32] [--duration 10]

Drives the runtime API (`RuntimeAPI.__call__`: parse, validate, route, invoke, record
metrics, encode) with an in-memory ASGI receive/send and a transport that answers at
once, and prints the CPU time per request (minimum over `--repeats` rounds of
`--requests`). No sockets and no instance, so it isolates what the gateway's Python
costs and stays meaningful on a busy machine where wrk throughput does not. Runs against
whatever `modelhost` is importable, including versions before the data plane (e7c8dc6:
set `PYTHONPATH` to the old tree's `src`), so old and new can be compared in one sitting;
interleave several invocations of each and compare medians.

`--wrk` measures the same over real sockets: `modelhost serve` with the churn model
(batching on), wrk at `--connections`, and the CPU time the gateway process itself used
(`/proc/<pid>/stat`, instances excluded) per request answered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/endpoints/ep/invocations",
    "raw_path": b"/endpoints/ep/invocations",
    "headers": [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"text/csv"),
        (b"accept", b"text/csv"),
        (b"content-length", b"3"),
        (b"user-agent", b"wrk"),
    ],
}
MESSAGE = {"type": "http.request", "body": b"1,2", "more_body": False}


class Instant:
    """An instance transport that answers every request at once."""

    async def request(self, *_args: Any) -> tuple[int, dict[bytes, bytes], bytes]:
        return 200, {b"content-type": b"text/csv"}, b"0.5"


def runtime_api() -> Any:
    """The runtime API of the importable modelhost, over two fake instances."""
    from modelhost.routing.table import EndpointRoute, RoutingTable, VariantRoute
    from modelhost.telemetry.metrics import InvocationMetrics

    try:
        from modelhost.fleet.dataplane.plane import DataPlane, Limits
    except ImportError:  # before the data plane (issue 19): the controller-based API
        return _old_runtime_api()
    from modelhost.gateway.runtime_api import RuntimeAPI
    from modelhost.testing.dataplane import FakeHealth, FakeRoutes, instance

    route = EndpointRoute(
        "ep", (VariantRoute("AllTraffic", 1.0, (instance("a", 1), instance("b", 2))),)
    )
    limits = Limits(5.0, 6_000_000, 8, Path("/nonexistent"))
    plane = DataPlane(
        FakeRoutes(RoutingTable({"ep": route})),
        FakeHealth(),
        Instant(),
        random.random,
        lambda _name: None,
        InvocationMetrics(),
        limits,
        lambda *_: "arn",  # (endpoint[, log path]): the LogStreamArn
    )
    return RuntimeAPI(plane, 6_000_000, "123456789012")


def _old_runtime_api() -> Any:
    from modelhost.gateway.runtime_api import RuntimeAPI  # type: ignore[attr-defined]
    from modelhost.routing.table import EndpointRoute, RoutingTable, VariantRoute
    from modelhost.telemetry.metrics import InvocationMetrics

    def inst(name: str, port: int) -> SimpleNamespace:
        return SimpleNamespace(
            instance_id=name, port=port, outstanding=0, log_path=Path("/x"), spec=None
        )

    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (inst("a", 1), inst("b", 2))),))
    controller = SimpleNamespace(
        table=RoutingTable({"ep": route}),
        rand=random.random,
        client=SimpleNamespace(http=Instant()),
        bandits={},
    )
    return RuntimeAPI(controller, InvocationMetrics(), 6_000_000, 5.0, "123456789012", "us-east-1")


def measure(requests: int, repeats: int) -> float:
    api = runtime_api()
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return MESSAGE

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and not statuses:
            statuses.append(message["status"])

    async def loop(n: int) -> None:
        for _ in range(n):
            await api(SCOPE, receive, send)

    asyncio.run(loop(1000))  # warm up, and check the path answers 200
    if statuses != [200]:
        raise SystemExit(f"the runtime API answered {statuses}")
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        asyncio.run(loop(requests))
        best = min(best, (time.process_time() - started) / requests * 1e6)
    return best


REQUEST = (
    b"POST /endpoints/ep/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
    b"Accept: text/csv\r\nUser-Agent: wrk\r\nContent-Length: 3\r\n\r\n1,2"
)


class _Socket:
    """The client's side of one connection: counts the answers written."""

    def __init__(self) -> None:
        self.answered: asyncio.Future[None] | None = None
        self.first = b""

    def write(self, data: bytes) -> None:
        if not self.first:
            self.first = data
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(None)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def measure_protocol(requests: int, repeats: int, fast: bool) -> float:
    """CPU µs per request through the gateway's HTTP protocol (request bytes in, answer
    bytes out: parsing, the guard with auth off, dispatch or the fast path, the runtime API
    and the data plane), with the instant fake instance."""
    import uvicorn
    from uvicorn.server import ServerState

    from modelhost.settings import Settings

    api = runtime_api()
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="gateway-path-")), auth_enabled=False)
    try:
        from modelhost.gateway.auth.guard import Guard
    except ImportError:  # before authentication existed
        guard = None
    else:
        guard = Guard(settings, None)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if guard is None:
            await api(scope, receive, send)
        else:
            await guard(scope, receive, send, api)

    try:
        from modelhost.gateway.fastpath import FastInvoke, gateway_protocol
    except ImportError:  # before the fast path: the limits over uvicorn's protocol
        from modelhost.container.http_protocol import one_write
        from modelhost.gateway.http_limits import bounded_protocol

        if fast:
            raise
        cls = one_write(bounded_protocol(24 * 1024))
    else:
        from modelhost.container.http_protocol import one_write

        invoke = FastInvoke(settings, api, guard, lambda _name: None) if fast else None
        cls = one_write(gateway_protocol(invoke, 24 * 1024))

    async def run(n: int) -> float:
        config = uvicorn.Config(app=app, log_level="warning", limit_concurrency=1024)
        protocol = cls(config=config, server_state=ServerState(), app_state={})
        sock = _Socket()
        protocol.connection_made(sock)
        loop = asyncio.get_running_loop()
        started = time.process_time()
        for _ in range(n):
            sock.answered = loop.create_future()
            protocol.data_received(REQUEST)
            await sock.answered
        used = time.process_time() - started
        if not sock.first.startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"the gateway answered {sock.first[:200]!r}")
        return used

    import uvloop  # the gateway's loop (uvicorn picks it)

    uvloop.run(run(1000))  # warm up
    return min(uvloop.run(run(requests)) for _ in range(repeats)) / requests * 1e6


def _process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_wrk(
    connections: list[int], duration_s: float, profile_dir: Path | None = None
) -> list[tuple[int, float, int]]:
    """(connections, gateway CPU µs per request, requests) for each connection count, over
    real sockets (see the docstring). With `profile_dir`, py-spy samples the gateway during
    each measured run and the split by stage is printed (bench/_stages.py)."""
    from _wrk import ensure_wrk
    from modelhost import demo
    from modelhost.testing.churn import csv_body, make_churn, train_xgboost, write_xgboost_artifact
    from modelhost.testing.server import ModelhostServer

    wrk = ensure_wrk()
    data = make_churn(3000, seed=1)
    results = []
    with tempfile.TemporaryDirectory(prefix="gateway-path-") as tmp:
        work = Path(tmp)
        artifact = write_xgboost_artifact(train_xgboost(data), work / "model")
        env = {"MODELHOST_LOG_LEVEL": "warning", "OMP_NUM_THREADS": "1"}
        env["MODELHOST_AUTH_ENABLED"] = "false"  # wrk replays one unsigned request
        with ModelhostServer(work / "home", env=env) as server:
            assert server.proc is not None
            sm, _ = demo.boto3_clients(server.url)
            demo.deploy(sm, artifact)
            script = work / "request.lua"
            body = csv_body(data.X[:1]).strip()
            script.write_text(
                f'wrk.method = "POST"\nwrk.body = "{body}\\n"\n'
                'wrk.headers["Content-Type"] = "text/csv"\n'
            )
            url = f"{server.url}/endpoints/{demo.ENDPOINT_NAME}/invocations"
            for conns in connections:
                command = [wrk, "-t1", f"-c{conns}", "-s", str(script), url]
                subprocess.run([*command, "-d2s"], capture_output=True, check=True)  # warm-up
                spy = None
                if profile_dir is not None:
                    raw = profile_dir / f"gateway-c{conns}.txt"
                    spy = _start_py_spy(server.proc.pid, raw, duration_s)
                before = _process_cpu_s(server.proc.pid)
                out = subprocess.run(
                    [*command, f"-d{duration_s:g}s"], capture_output=True, text=True, check=True
                ).stdout
                used_s = _process_cpu_s(server.proc.pid) - before
                match = re.search(r"(\d+) requests in", out)
                if match is None:
                    raise SystemExit(f"cannot read wrk's output:\n{out}")
                requests = int(match.group(1))
                per_request_us = used_s / max(requests, 1) * 1e6
                results.append((conns, per_request_us, requests))
                if spy is not None:
                    spy.wait(timeout=duration_s + 60)
                    _print_stages(raw, conns, per_request_us)
    return results


def _start_py_spy(pid: int, raw: Path, duration_s: float) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` for the run (non-blocking: the gateway is never paused)."""
    command = ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
    command += ["--format", "raw", "--output", str(raw), "--duration", f"{duration_s:.0f}"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _print_stages(raw: Path, connections: int, per_request_us: float) -> None:
    from _stages import split, table

    if not raw.exists():
        print(f"py-spy wrote nothing to {raw} (is ptrace allowed?)")
        return
    print(f"\nconnections {connections}: the gateway's CPU by stage (py-spy, {raw})")
    print(table(split(raw), per_request_us))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--wrk", action="store_true", help="over real sockets, with wrk")
    parser.add_argument(
        "--connections", default="32", help="with --wrk: comma-separated, e.g. 1,32"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="with --wrk: py-spy the gateway into DIR and print its CPU by stage",
    )
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    import modelhost

    where = Path(modelhost.__file__).parent
    if args.wrk:
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        connections = [int(c) for c in args.connections.split(",")]
        for conns, per_request_us, requests in measure_wrk(
            connections, args.duration, args.profile
        ):
            print(
                f"{where}: c={conns} gateway process {per_request_us:.1f} µs CPU per request "
                f"({requests} requests)"
            )
        return
    per_request_us = measure(args.requests, args.repeats)
    print(f"{where}: {per_request_us:.2f} µs CPU per request (runtime API alone)")
    for fast in (False, True):
        try:
            per_request_us = measure_protocol(args.requests, args.repeats, fast)
        except ImportError:
            continue  # a version without the fast path
        path = "fast path" if fast else "ASGI"
        print(f"{where}: {per_request_us:.2f} µs CPU per request (HTTP protocol, {path})")


if __name__ == "__main__":
    main()
