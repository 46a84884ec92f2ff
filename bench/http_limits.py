"""What the gateway's slow-client timers cost: uvicorn's httptools protocol against
modelhost's BoundedHttpToolsProtocol (head size cap, head and body timers), same tiny ASGI
app, same machine, alternating runs.

    python bench/http_limits.py [--runs 3] [--seconds 5] [--connections 32]

Each request is a POST with a small body, so both the head and the body deadline are set
and cleared once per request. Reports req/s, p50 and the server's CPU time per request
(from /proc, less sensitive to a busy machine than throughput) of each, and same-run
ratios of the medians (the machine is shared and noisy: compare only the ratios).
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _proc import tree_cpu_seconds

SERVER = """
import sys, uvicorn
from modelhost.gateway.http_limits import bounded_protocol

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

http = bounded_protocol(24 * 1024, 10.0, 60.0) if sys.argv[2] == "bounded" else "httptools"
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http=http, log_level="warning",
            access_log=False, loop="uvloop")
"""

LUA = 'wrk.method = "POST"\nwrk.body = "1,2,3,4,5,6,7,8"\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def run_wrk(port: int, script: Path, seconds: int, connections: int) -> tuple[float, float]:
    """(req/s, p50 ms) of one wrk run."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([0-9.]+)(us|ms|s)", out)
    assert p50 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    if re.search(r"Non-2xx|Socket errors", out):
        raise RuntimeError(f"errors during the run:\n{out}")
    return rps, float(p50.group(1)) * scale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {"httptools": [], "bounded": []}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA)
        servers = {}
        for kind in results:
            port = free_port()
            proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), kind])
            servers[kind] = (port, proc)
        try:
            for port, _ in servers.values():
                wait_port(port)
            for run in range(args.runs):
                for kind, (port, proc) in servers.items():
                    cpu0 = tree_cpu_seconds(proc.pid)
                    rps, p50 = run_wrk(port, script, args.seconds, args.connections)
                    cpu_us = (tree_cpu_seconds(proc.pid) - cpu0) / (rps * args.seconds) * 1e6
                    results[kind].append((rps, p50, cpu_us))
                    print(
                        f"run {run + 1} {kind:9s} {rps:9.0f} req/s  p50 {p50:.3f} ms  "
                        f"server CPU {cpu_us:.1f} µs/request",
                        flush=True,
                    )
        finally:
            for _, proc in servers.values():
                proc.terminate()
                proc.wait(10)
    for i, what in ((0, "req/s"), (2, "server CPU µs/request")):
        plain = statistics.median(r[i] for r in results["httptools"])
        bounded = statistics.median(r[i] for r in results["bounded"])
        print(
            f"median {what}: httptools {plain:.1f}, bounded {bounded:.1f}; "
            f"ratio bounded/httptools {bounded / plain:.3f} (same run)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
