"""Memory and disk of the metric series store under simulated load (no servers).

    python bench/metric_store.py [--endpoints 50] [--variants 3] [--seconds 3600] [--rps 2]

Feeds `--endpoints × --variants` variants with `--rps` invocations per variant per
simulated second (a fake clock; 7 series per variant, two with sketches) for `--seconds`,
flushing to a SQLite file every simulated second as the gateway does. Reports Python heap
held by the store (tracemalloc), points left in memory, the file's size and the time per
record (`--trace` adds tracemalloc's count of the heap, which slows recording several
times over). Results go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
import tracemalloc
from datetime import datetime
from pathlib import Path

from _machine import format_machine_info, machine_info
from modelhost.telemetry.metric_db import SqliteBackend
from modelhost.telemetry.series import SeriesStore

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--rps", type=int, default=2, help="invocations per variant per second")
    parser.add_argument(
        "--trace", action="store_true", help="count the heap with tracemalloc (slows recording)"
    )
    args = parser.parse_args()
    print(format_machine_info(machine_info()))
    rng = random.Random(0)
    now = [1_700_000_000.0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.db"
        if args.trace:
            tracemalloc.start()
        rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        store = SeriesStore(lambda: now[0], backend=SqliteBackend(path))
        windows = [
            store.window(f"endpoint-{e}", f"variant-{v}")
            for e in range(args.endpoints)
            for v in range(args.variants)
        ]
        record_s = flush_s = 0.0
        peak_pending = 0
        for second in range(args.seconds):
            now[0] += 1.0
            sec = int(now[0])
            started = time.perf_counter()
            for w in windows:
                for _ in range(args.rps):
                    w.record(sec, 200, rng.lognormvariate(6.5, 0.4), rng.uniform(20, 60), 2)
            record_s += time.perf_counter() - started
            started = time.perf_counter()
            store.flush()
            flush_s += time.perf_counter() - started
            peak_pending = max(peak_pending, store.pending_points())
            if second % 600 == 599:
                current, _ = tracemalloc.get_traced_memory()
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(
                    f"  t={second + 1:>5} s  heap {current / 2**20:6.1f} MiB  max RSS "
                    f"{rss:6.1f} MiB  db {path.stat().st_size / 2**20:7.1f} MiB",
                    flush=True,
                )
        current, peak = tracemalloc.get_traced_memory()
        rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_start) / 1024
        records = args.seconds * len(windows) * args.rps
        result = {
            "series": store.series_count,
            "records": records,
            "max_rss_growth_mib": round(rss_growth, 1),
            "heap_mib": round(current / 2**20, 1) if args.trace else None,
            "heap_peak_mib": round(peak / 2**20, 1) if args.trace else None,
            "peak_pending_points": peak_pending,
            "db_mib": round(path.stat().st_size / 2**20, 1),
            "record_us": round(record_s / records * 1e6, 2),
            "flush_ms_per_s": round(flush_s / args.seconds * 1e3, 2),
        }
    print(json.dumps(result, indent=2))
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"metric_store-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"args": vars(args), "machine": machine_info(), **result}))


if __name__ == "__main__":
    main()
