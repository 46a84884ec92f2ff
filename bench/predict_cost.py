"""Fixed cost of one small tree-model predict: each library's own call against the runtime's
fast path (`modelhost.frameworks.xgboost_fast`, `modelhost.frameworks.lightgbm_fast`), in
process, same run.

    python bench/predict_cost.py [--frameworks xgboost,lightgbm] [--rows 1,8,32,256]
                                 [--calls 2000] [--rounds 5] [--trees 100] [--clock wall]
                                 [--lightgbm-paths] [--threads 2]

Trains the churn model of `bench/multimodel.py` (binary, depth 5, 69 features, `--trees`
rounds, one thread) with each framework, then times `--calls` back-to-back predicts of the
same `--rows` rows for each path, alternating the paths round by round (ABAB) so both see
the same machine; reports the median over `--rounds` of µs per call, the ratio, and checks
the two answers are bit-identical. XGBoost: `Booster.inplace_predict` on float32, as the
XGBoost runtime calls it; LightGBM: `Booster.predict(x, num_threads=1)` on float64, as the
LightGBM runtime calls it. Single-core CPU time is what a multi-model instance pays per
request when nothing merges (hot51: one request per model in flight).

`--clock cpu` times this thread's CPU time instead of wall time (steadier on a shared
machine: time spent descheduled does not count). `--lightgbm-paths` adds LightGBM's two C
paths forced for every row count (one call per row, one batch call), which is how
`lightgbm_fast.LOOP_MAX_ROWS` was chosen. `--threads N` (N > 1) then calls LightGBM's fast
path with one row from N threads at once, three ways: the FastConfig pool (each caller its
own, the runtime's choice), one FastConfig shared (callers wait on LightGBM's own mutex),
and one FastConfig whose busy callers fall back to the library (XGBoost's fast path's
choice); it reports wall µs per call over all threads (lower is better).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from _machine import format_machine_info, machine_info, package_version
from _proc import busy_elsewhere_pct
from modelhost.frameworks import lightgbm_fast
from modelhost.frameworks.xgboost_fast import FastPredictor as XGBoostFast
from modelhost.testing.churn import ChurnData, make_churn, train_xgboost

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FRAMEWORKS = ("xgboost", "lightgbm")
Predict = Callable[[np.ndarray], Any]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated")
    parser.add_argument("--rows", default="1,8,32,256", help="rows per call, comma-separated")
    parser.add_argument("--calls", type=int, default=2000, help="calls per timing")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--trees", type=int, default=100, help="boosting rounds of the model")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument(
        "--lightgbm-paths", action="store_true", help="also time LightGBM's two C paths forced"
    )
    parser.add_argument("--threads", type=int, default=1, help="LightGBM callers at once")
    args = parser.parse_args(argv)
    try:
        args.rows = sorted({int(r) for r in args.rows.split(",") if r.strip()})
    except ValueError:
        parser.error("--rows takes integers such as 1,8,32")
    args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    if not args.frameworks or set(args.frameworks) - set(FRAMEWORKS):
        parser.error(f"--frameworks takes a list of {', '.join(FRAMEWORKS)}")
    if min(args.calls, args.rounds, args.trees, args.threads, *args.rows) < 1:
        parser.error("--rows, --calls, --rounds, --trees and --threads must be positive")
    return args


def per_call_us(predict: Callable[[], Any], calls: int, clock: Callable[[], float]) -> float:
    started = clock()
    for _ in range(calls):
        predict()
    return (clock() - started) / calls * 1e6


def time_paths(
    paths: dict[str, Predict], x: np.ndarray, args: argparse.Namespace
) -> dict[str, float]:
    """Median µs per call of each path on `x`, the paths alternating round by round."""
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    # Fewer calls for big batches, so a run stays short; at least 100 per timing.
    calls = max(100, min(args.calls, args.calls * 8 // max(x.shape[0], 1)))
    for predict in paths.values():
        per_call_us(lambda p=predict: p(x), min(200, calls), clock)  # warm
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, predict in paths.items():
            samples[name].append(per_call_us(lambda p=predict: p(x), calls, clock))
    return {name: statistics.median(values) for name, values in samples.items()}


def xgboost_paths(data: ChurnData, trees: int) -> tuple[dict[str, Predict], np.ndarray]:
    booster = train_xgboost(data, num_round=trees, seed=0, nthread=1)
    booster.set_param({"nthread": 1})
    fast = XGBoostFast(booster)
    paths: dict[str, Predict] = {
        "library": lambda x: booster.inplace_predict(x, validate_features=False),
        "fast": fast.predict,
    }
    return paths, np.ascontiguousarray(data.X.astype(np.float32))


def train_lightgbm(data: ChurnData, trees: int) -> tuple[Any, np.ndarray]:
    import lightgbm as lgb

    X = np.ascontiguousarray(data.X.astype(np.float64))  # the LightGBM runtime's dtype
    params = {"objective": "binary", "max_depth": 5, "num_threads": 1, "seed": 0, "verbose": -1}
    return lgb.train(params, lgb.Dataset(X, data.y), num_boost_round=trees), X


def lightgbm_paths(
    data: ChurnData, trees: int, both_c_paths: bool
) -> tuple[dict[str, Predict], np.ndarray]:
    booster, X = train_lightgbm(data, trees)
    fast = lightgbm_fast.FastPredictor(booster, num_threads=1)
    paths: dict[str, Predict] = {
        "library": lambda x: booster.predict(x, num_threads=1),
        "fast": fast.predict,
    }
    if both_c_paths:

        def forced(loop_max: int) -> Predict:
            def predict(x: np.ndarray) -> Any:
                default, lightgbm_fast.LOOP_MAX_ROWS = lightgbm_fast.LOOP_MAX_ROWS, loop_max
                try:
                    return fast.predict(x)
                finally:
                    lightgbm_fast.LOOP_MAX_ROWS = default

            return predict

        paths["per-row calls"] = forced(10**9)
        paths["batch call"] = forced(0)
    return paths, X


def run_framework(
    name: str, data: ChurnData, args: argparse.Namespace
) -> dict[int, dict[str, float]]:
    if name == "xgboost":
        paths, X = xgboost_paths(data, args.trees)
        library = "inplace_predict"
    else:
        paths, X = lightgbm_paths(data, args.trees, args.lightgbm_paths)
        library = "Booster.predict"
    extra = [p for p in paths if p not in ("library", "fast")]
    header = f"{'rows':>5} {library + ' µs':>19} {'fast path µs':>13} {'ratio':>7}"
    print(f"\n{name}\n" + header + "".join(f" {p + ' µs':>17}" for p in extra))
    results: dict[int, dict[str, float]] = {}
    for rows in args.rows:
        x = np.ascontiguousarray(X[:rows])
        want = paths["library"](x)
        for path, predict in paths.items():
            got = predict(x)
            if got is None or not np.array_equal(got, want):
                raise SystemExit(f"{name}: the {path} answer for {rows} rows differs")
        us = time_paths(paths, x, args)
        lib, fst = us["library"], us["fast"]
        results[rows] = {**{f"{p}_us": v for p, v in us.items()}, "ratio": lib / fst}
        line = f"{rows:>5} {lib:>19.1f} {fst:>13.1f} {lib / fst:>6.2f}x"
        print(line + "".join(f" {us[p]:>17.1f}" for p in extra), flush=True)
    return results


def threaded_us(predict: Callable[[], Any], threads: int, calls: int) -> float:
    """Wall µs per call of `threads` threads each making `calls` calls at once."""
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        for _ in range(calls):
            predict()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - started) / (threads * calls) * 1e6


class SharedConfig(lightgbm_fast.FastPredictor):
    """The fast path with one FastConfig for every caller at once (they wait on
    LightGBM's own mutex inside it): the alternative to the runtime's pool, for --threads."""

    shared: Any = None

    def _checkout(self, dtype: int) -> Any:
        if self.shared is None:
            self.shared = super()._checkout(dtype)
        return self.shared

    def _checkin(self, dtype: int, slot: Any) -> None:
        pass  # kept for the next caller, whoever it is


def lightgbm_threads(data: ChurnData, args: argparse.Namespace) -> dict[str, float]:
    booster, X = train_lightgbm(data, args.trees)
    x = np.ascontiguousarray(X[:1])
    pool = lightgbm_fast.FastPredictor(booster, num_threads=1)
    shared = SharedConfig(booster, num_threads=1)
    one = lightgbm_fast.FastPredictor(booster, num_threads=1)
    one.predict(x)  # its one FastConfig made
    one._made = lightgbm_fast.MAX_CONFIGS  # and no second: a busy caller gets None

    def one_or_library() -> Any:
        got = one.predict(x)
        return got if got is not None else booster.predict(x, num_threads=1)

    variants = {
        "pool": lambda: pool.predict(x),
        "shared": lambda: shared.predict(x),
        "one+library": one_or_library,
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, predict in variants.items():
            samples[name].append(threaded_us(predict, args.threads, args.calls))
    result = {name: statistics.median(values) for name, values in samples.items()}
    print(
        f"\nlightgbm, one row from {args.threads} threads at once (wall µs per call, all threads)"
    )
    for name, us in result.items():
        print(f"  {name:<12} {us:>8.1f}")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    info["lightgbm"] = package_version("lightgbm")
    print(format_machine_info(info), f"\nlightgbm: {info['lightgbm']}", sep="", flush=True)
    print(f"clock:    {args.clock} time per call, median of {args.rounds} rounds")
    busy = busy_elsewhere_pct()
    if busy > 20:
        print(f"warning: other processes use {busy:.0f}% of a core: compare the ratios only")
    data = make_churn(20_000, seed=11)
    results: dict[str, Any] = {"machine": info, "args": vars(args), "busy_elsewhere_pct": busy}
    for name in args.frameworks:
        results[name] = run_framework(name, data, args)
    if args.threads > 1 and "lightgbm" in args.frameworks:
        results["lightgbm_threads"] = lightgbm_threads(data, args)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"predict_cost-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
