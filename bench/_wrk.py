"""Drive wrk: a Lua script for the request, exact percentiles from `done()`, wrk's own CPU."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _proc import machine_busy_seconds, tree_cpu_seconds

_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "{content_type}"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
"""


class BenchError(RuntimeError):
    """A benchmark run that must not be reported as a result (errors, bad answers)."""


def ensure_wrk() -> str:
    """Path of wrk, installing Debian's package with apt-get if it is missing."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed; install it with: sudo apt-get install -y wrk")
    print("wrk not found; installing Debian's package: apt-get install -y wrk", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, timeout=600).returncode != 0:
        print("apt-get install failed; running apt-get update and trying again", flush=True)
        subprocess.run(["apt-get", "update", "-q"], env=env, timeout=600, check=True)
        subprocess.run(install, env=env, timeout=600, check=True)
    path = shutil.which("wrk")
    if not path:
        raise BenchError("apt-get reported success but wrk is still not on PATH")
    return path


def write_script(path: Path, body: str, content_type: str) -> Path:
    if "]==]" in body or '"' in content_type:
        raise ValueError("body or content type cannot be embedded in the Lua script")
    path.write_text(_LUA.format(body=body, content_type=content_type))
    return path


@dataclass
class WrkResult:
    """One wrk run. Latencies in µs; CPU in percent of one core over the run's wall time."""

    connections: int
    duration_s: float
    requests: int
    requests_per_s: float
    p50_us: int
    p90_us: int
    p99_us: int
    p999_us: int
    max_us: int
    mean_us: float
    errors: dict[str, int]
    wrk_cpu_pct: float
    server_cpu_pct: float | None
    other_cpu_pct: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    connections: int,
    duration_s: float,
    server_pid: int | None = None,
) -> WrkResult:
    """Run `wrk -t1 -c<connections> -d<duration>s --latency -s <script> <url>` once."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("benchmarks only ever target 127.0.0.1")
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    server_cpu_before = tree_cpu_seconds(server_pid) if server_pid else 0.0
    machine_before = machine_busy_seconds()
    started = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    # wrk stops by itself after -d; the watchdog only covers a wedged wrk.
    watchdog = threading.Timer(duration_s + 30, lambda: _kill(process.pid))
    watchdog.start()
    try:
        # wait4 gives this child's own rusage (its output is small enough for the pipe).
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        machine_pct = (machine_busy_seconds() - machine_before) / wall * 100
        output = process.stdout.read().decode(errors="replace") if process.stdout else ""
    finally:
        watchdog.cancel()
        if process.returncode is None:
            _kill(process.pid)
            process.wait()
        if process.stdout:
            process.stdout.close()
    server_cpu = (
        (tree_cpu_seconds(server_pid) - server_cpu_before) / wall * 100 if server_pid else None
    )
    if process.returncode != 0:
        raise BenchError(f"wrk exited with {process.returncode}:\n{output}")
    line = next((ln for ln in output.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise BenchError(f"wrk printed no summary line:\n{output}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    errors = {
        k.removesuffix("_errors"): int(raw[k])
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    }
    if any(errors.values()) or raw["requests"] == 0:
        raise BenchError(
            f"wrk saw errors against {url} at {connections} connections: {errors} "
            f"(status = non-2xx/3xx responses)\n{output}"
        )
    duration = raw["duration_us"] / 1e6
    wrk_cpu = (usage.ru_utime + usage.ru_stime) / wall * 100
    return WrkResult(
        connections=connections,
        duration_s=round(duration, 3),
        requests=raw["requests"],
        requests_per_s=raw["requests"] / duration,
        p50_us=raw["p50_us"],
        p90_us=raw["p90_us"],
        p99_us=raw["p99_us"],
        p999_us=raw["p999_us"],
        max_us=raw["max_us"],
        mean_us=raw["mean_us"],
        errors=errors,
        wrk_cpu_pct=wrk_cpu,
        server_cpu_pct=server_cpu,
        # Whatever else ran meanwhile (other jobs on a shared machine): a noise indicator.
        other_cpu_pct=max(0.0, machine_pct - wrk_cpu - server_cpu)
        if server_cpu is not None
        else None,
    )


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
