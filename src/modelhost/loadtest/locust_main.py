"""The Locust process of a load test: `python -m modelhost.loadtest.locust_main SPEC RESULT`.

Locust runs as a library here, in a process of its own, because importing it monkey-patches
the whole process for gevent: the gateway and the CLI process never import it (run.py starts
this module). With `workers > 0` this process is Locust's master (bound to 127.0.0.1) and
starts that many workers with the `locust --worker` command, as Locust's docs advise; the
same spec file configures them.

The process follows the phase schedule (`spec.users_at`), samples the cumulative totals
every interval, prints one progress line per sample (the CLI relays them) and writes the
samples' timeline and the summary to RESULT as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import locust
from locust.env import Environment
from locust.runners import MasterRunner, Runner

from modelhost.loadtest import locustfile
from modelhost.loadtest.spec import LoadSpec, total_duration_s, users_at
from modelhost.loadtest.stats import Sample, errors_by_code, summary, timeline, timeline_point

TICK_S = 0.1
WORKERS_READY_TIMEOUT_S = 120.0
# Workers report to the master once a second (Locust's default is 3 s; set in locustfile.py).
FINAL_REPORT_WAIT_S = 2.5


def _sample(runner: Runner) -> Sample:
    total = runner.stats.total
    return Sample(
        time.time(),
        runner.user_count,
        total.num_requests,
        total.num_failures,
        dict(total.response_times),
    )


def _progress(sample: Sample, start: float, prev: Sample) -> str:
    """One progress line: totals, and this interval's req/s and percentiles (`stats.
    progress_latencies` reads them back)."""
    point = timeline_point(prev, sample, start)
    latencies = "".join(
        f"  {k} {'-' if point[k] is None else format(point[k], '.0f')}" for k in ("p50", "p99")
    )
    return (
        f"{sample.t - start:7.1f}s  users {sample.users:4d}  requests {sample.requests:7d}  "
        f"failures {sample.failures:5d}  req/s {point['RequestsPerSecond']:8.1f}{latencies}"
    )


def _start_workers(spec_path: Path, spec: LoadSpec, port: int) -> list[subprocess.Popen[bytes]]:
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        locustfile.__file__,
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(port),
        "--modelhost-spec",
        str(spec_path),
        "--loglevel",
        "WARNING",
    ]
    return [subprocess.Popen(argv, stdin=subprocess.DEVNULL) for _ in range(spec.workers)]


def _wait_for_workers(runner: MasterRunner, count: int) -> None:
    deadline = time.monotonic() + WORKERS_READY_TIMEOUT_S
    while runner.worker_count < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {runner.worker_count} of {count} Locust workers connected")
        gevent.sleep(0.1)


def _follow_schedule(runner: Runner, spec: LoadSpec) -> list[Sample]:
    """Run the phases: adjust the user count as the schedule says, sample every interval."""
    samples = [_sample(runner)]
    start = samples[0].t
    current = 0
    next_sample = start + spec.sample_interval_s
    while True:
        now = time.time()
        wanted = users_at(spec.phases, now - start)
        if wanted is None:
            break
        if wanted != current:
            if wanted == 0:
                runner.stop()
            else:
                # Every change comes from the schedule, so Locust may spawn at once.
                runner.start(wanted, spawn_rate=max(wanted, 1))
            current = wanted
        if now >= next_sample:
            samples.append(_sample(runner))
            print(_progress(samples[-1], start, samples[-2]), flush=True)
            next_sample += spec.sample_interval_s
        gevent.sleep(TICK_S)
    return samples


def run(spec_path: Path, result_path: Path) -> dict[str, Any]:
    spec = LoadSpec.from_json(spec_path.read_text())
    locustfile.configure(spec)
    env = Environment(user_classes=[locustfile.SageMakerUser], events=locust.events)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        if spec.workers > 0:
            from modelhost.fleet.local import free_port

            port = free_port()
            master = env.create_master_runner("127.0.0.1", port)
            workers = _start_workers(spec_path, spec, port)
            _wait_for_workers(master, spec.workers)
            runner: Runner = master
        else:
            runner = env.create_local_runner()
        samples = _follow_schedule(runner, spec)
        runner.stop()
        if workers:
            gevent.sleep(FINAL_REPORT_WAIT_S)
        samples.append(_sample(runner))
        errors = errors_by_code((str(e.error), e.occurrences) for e in runner.stats.errors.values())
        max_ms = runner.stats.total.max_response_time if samples[-1].requests else None
        result = {
            "Endpoint": spec.endpoint,
            "StartTime": samples[0].t,
            "EndTime": samples[-1].t,
            "Workers": spec.workers,
            "Phases": [p.to_wire() for p in spec.phases],
            "PlannedDurationSeconds": total_duration_s(spec.phases),
            "Summary": summary(samples[-1], samples[-1].t - samples[0].t, max_ms, errors),
            "Timeline": timeline(samples),
            # Per request name: the endpoint, or the TargetModel on a multi-model endpoint.
            "RequestsByName": {
                name: entry.num_requests for (name, _m), entry in runner.stats.entries.items()
            },
        }
        result_path.write_text(json.dumps(result, indent=1))
        runner.quit()
        return result
    finally:
        for proc in workers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]))
