"""Dashboard page load and refresh cost with 50 endpoints' worth of SYNTHETIC series.

    python bench/dashboard.py [--endpoints 50] [--variants 3] [--seconds 3600] [--loads 5]

No model runs: the series are written straight into a series store (SQLite, as the gateway
keeps them) by a simulated clock: every variant gets one invocation every 2 simulated
seconds for `--seconds` (7 series per variant, two with sketches) and two instances per
variant a CPU and memory sample every 10 seconds. The endpoints, variants, alarms, a
canary rollback and transform jobs around them are synthetic too (labelled so in the
page's data). The real dashboard routes serve them from uvicorn on 127.0.0.1, and
Debian's Chromium (through Playwright) loads the page in the compare view, for two
endpoints, over 1 hour.

Reports, each the median of `--loads`: the snapshot's assembly time in-process per range
(overview only, and with two endpoints' charts), its JSON size, and in the browser the time
from navigation start to both endpoints' charts drawn with data, and one refresh (the
batched data call). The machine is shared and noisy: compare numbers of the same run only.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from _machine import format_machine_info, machine_info
from _proc import free_port
from modelhost.gateway.dashboard.data import RANGES_S, DashboardData, Sources
from modelhost.gateway.dashboard.routes import DashboardRoutes
from modelhost.telemetry.metric_db import SqliteBackend
from modelhost.telemetry.series import ENDPOINTS, SeriesStore, instance_key
from modelhost.testing.browser import browser_page, missing_reason

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fill(store: SeriesStore, clock: Clock, names: list[str], variants: int, seconds: int) -> None:
    """SYNTHETIC load: see the module docstring."""
    rng = random.Random(1)
    end = clock.now
    clock.now = end - seconds
    while clock.now < end:
        t = int(clock.now)
        for name in names:
            for v in range(variants):
                variant = f"Variant{v + 1}"
                if t % 2 == 0:
                    status = 500 if rng.random() < 0.01 else 200
                    model_us = rng.lognormvariate(7.5 + v * 0.2, 0.4)
                    store.record(name, variant, status=status, model_us=model_us, overhead_us=400)
                if t % 10 == 0:
                    for i in range(2):
                        instance = f"i-{name}-{v}-{i}"
                        for metric, value in (
                            ("CPUUtilization", 20 + 30 * rng.random()),
                            ("MemoryUtilization", 10 + rng.random()),
                        ):
                            key = instance_key(ENDPOINTS, metric, name, variant, instance)
                            store.observe(key, value)
        if t % 60 == 0:
            store.flush()
        clock.now += 1
    store.flush()


def sources(store: SeriesStore, names: list[str], variants: int, now: float) -> Sources:
    """SYNTHETIC endpoints, alarms and jobs around the series."""
    events = [
        {"Time": now - 1500, "Status": "Updating", "Message": "SYNTHETIC canary: 1 instance"},
        {"Time": now - 1200, "Status": "RollingBack", "Message": "SYNTHETIC alarm went off"},
        {"Time": now - 1100, "Status": "InService", "Message": "SYNTHETIC rolled back"},
    ]

    def describe(name: str) -> dict[str, Any]:
        return {
            "EndpointName": name,
            "EndpointStatus": "InService",
            "EndpointConfigName": f"{name}-config",
            "ProductionVariants": [
                {
                    "VariantName": f"Variant{v + 1}",
                    "CurrentWeight": 1.0,
                    "DesiredWeight": 1.0,
                    "CurrentInstanceCount": 2,
                    "DesiredInstanceCount": 2,
                }
                for v in range(variants)
            ],
        }

    alarms = [
        {
            "AlarmName": f"{n}-5xx",
            "StateValue": "ALARM" if i == 0 else "OK",
            "StateReason": "SYNTHETIC",
            "MetricName": "Invocation5XXErrors",
            "Dimensions": [{"Name": "EndpointName", "Value": n}],
        }
        for i, n in enumerate(names)
    ]
    jobs = [
        {
            "TransformJobName": f"synthetic-job-{i}",
            "TransformJobStatus": "InProgress" if i < 2 else "Completed",
            "Progress": {"RecordsPlanned": 1000, "RecordsDone": 1000 if i >= 2 else 300 * i},
        }
        for i in range(5)
    ]
    return Sources(
        series=store,
        endpoints=lambda: [
            {"Name": n, "Status": "InService", "Events": events if i == 0 else []}
            for i, n in enumerate(names)
        ],
        describe_endpoint=describe,
        bandit=lambda name: None,
        alarms=lambda: alarms,
        transform_jobs=lambda limit: jobs[:limit],
        shadow_report=lambda name: {"ShadowVariants": []},
    )


def in_process(data: DashboardData, names: list[str], loads: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in RANGES_S:
        for detail in ([], names[:2]):
            times, size = [], 0
            for _ in range(loads):
                started = time.perf_counter()
                doc = data.snapshot(label, detail, lambda name: True)
                times.append(time.perf_counter() - started)
                size = len(json.dumps(doc))
            key = f"{label}/{'overview' if not detail else 'compare'}"
            out[key] = {"median_ms": statistics.median(times) * 1e3, "json_bytes": size}
    return out


def in_browser(url: str, names: list[str], loads: int) -> dict[str, Any]:
    page_ms, refresh_ms = [], []
    target = f"{url}/dashboard#endpoint={names[0]}&compare={names[1]}&range=1h"
    drawn = """(names) => names.every((n) => {
        const c = document.querySelector(`[data-detail="${n}"] [data-chart="model_latency"]`);
        return c && Number(c.dataset.nonzero || 0) > 0;
    }) && performance.now()"""
    with browser_page() as page:
        for _ in range(loads):
            page.goto("about:blank")
            page.goto(target)
            handle = page.wait_for_function(drawn, arg=names[:2], timeout=120_000)
            page_ms.append(float(handle.json_value()))
            took = page.evaluate(
                """async (q) => { const t = performance.now();
                   await (await fetch('/api/dashboard/snapshot?' + q)).json();
                   return performance.now() - t; }""",
                f"range=1h&endpoints={names[0]},{names[1]}",
            )
            refresh_ms.append(float(took))
        RESULTS_DIR.mkdir(exist_ok=True)
    return {
        "page_to_charts_ms": statistics.median(page_ms),
        "refresh_call_ms": statistics.median(refresh_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    print(format_machine_info(machine_info()))
    names = [f"synthetic-{i:03d}" for i in range(args.endpoints)]
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        clock = Clock(time.time())
        store = SeriesStore(clock=clock, backend=SqliteBackend(Path(tmp) / "metrics.db"))
        started = time.perf_counter()
        fill(store, clock, names, args.variants, args.seconds)
        print(f"SYNTHETIC series: {store.series_count} in {time.perf_counter() - started:.1f} s")
        store.clock = time.time  # from here on the store reads real time, as the page does
        data = DashboardData(sources(store, names, args.variants, time.time()))
        results: dict[str, Any] = {"in_process": in_process(data, names, args.loads)}
        for key, row in results["in_process"].items():
            print(f"snapshot {key:14s} {row['median_ms']:8.1f} ms  {row['json_bytes']:>9,} B")
        reason = missing_reason()
        if reason is None:
            port = free_port()
            app = Starlette(routes=DashboardRoutes(data, None, None).routes())
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            )
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            try:
                results["browser"] = in_browser(f"http://127.0.0.1:{port}", names, args.loads)
            finally:
                server.should_exit = True
                thread.join(10)
            print(
                f"browser: page to charts drawn {results['browser']['page_to_charts_ms']:.0f} ms,"
                f" one refresh call {results['browser']['refresh_call_ms']:.0f} ms (medians)"
            )
        else:
            print(f"browser part skipped: {reason}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"dashboard-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"args": vars(args), "machine": machine_info(), **results}, indent=1))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
