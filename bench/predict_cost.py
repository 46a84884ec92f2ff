"""Fixed cost of one small XGBoost predict: the library's `inplace_predict` against the
runtime's fast path (`modelhost.frameworks.xgboost_fast`), in process, same run.

    python bench/predict_cost.py [--rows 1,8,32] [--calls 2000] [--rounds 5] [--trees 100]

Trains the churn model of `bench/multimodel.py` (binary:logistic, depth 5, 69 features,
`--trees` rounds, one thread), then times `--calls` back-to-back predicts of the same
`--rows` rows for each path, alternating the paths round by round (ABAB) so both see the
same machine; reports the median over `--rounds` of µs per call, the ratio, and checks
the two answers are bit-identical. Single-core CPU time is what a multi-model instance
pays per request when nothing merges (hot51: one request per model in flight).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from _machine import format_machine_info, machine_info
from _proc import busy_elsewhere_pct
from modelhost.frameworks.xgboost_fast import FastPredictor
from modelhost.testing.churn import make_churn, train_xgboost

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1,8,32", help="rows per call, comma-separated")
    parser.add_argument("--calls", type=int, default=2000, help="calls per timing")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--trees", type=int, default=100, help="boosting rounds of the model")
    args = parser.parse_args(argv)
    try:
        args.rows = sorted({int(r) for r in args.rows.split(",") if r.strip()})
    except ValueError:
        parser.error("--rows takes integers such as 1,8,32")
    if args.calls < 1 or args.rounds < 1 or args.trees < 1 or not args.rows or args.rows[0] < 1:
        parser.error("--rows, --calls, --rounds and --trees must be positive")
    return args


def per_call_us(predict: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        predict()
    return (time.perf_counter() - started) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print(format_machine_info(info), flush=True)
    busy = busy_elsewhere_pct()
    if busy > 20:
        print(f"warning: other processes use {busy:.0f}% of a core: compare the ratios only")
    data = make_churn(20_000, seed=11)
    booster = train_xgboost(data, num_round=args.trees, seed=0, nthread=1)
    booster.set_param({"nthread": 1})
    fast = FastPredictor(booster)
    X = np.ascontiguousarray(data.X.astype(np.float32))
    results: dict[str, Any] = {"machine": info, "args": vars(args), "rows": {}}
    print(f"\n{'rows':>5} {'inplace_predict µs':>19} {'fast path µs':>13} {'ratio':>7}")
    for rows in args.rows:
        x = np.ascontiguousarray(X[:rows])
        want = booster.inplace_predict(x, validate_features=False)
        got = fast.predict(x)
        if got is None or not np.array_equal(got, want):
            raise SystemExit(f"the fast path's answer for {rows} rows differs from the library's")

        def library(x: np.ndarray = x) -> Any:
            return booster.inplace_predict(x, validate_features=False)

        def fast_path(x: np.ndarray = x) -> Any:
            return fast.predict(x)

        for warm in (library, fast_path):
            per_call_us(warm, min(200, args.calls))
        lib_us, fast_us = [], []
        for _ in range(args.rounds):
            lib_us.append(per_call_us(library, args.calls))
            fast_us.append(per_call_us(fast_path, args.calls))
        lib, fst = statistics.median(lib_us), statistics.median(fast_us)
        results["rows"][rows] = {"inplace_predict_us": lib, "fast_us": fst, "ratio": lib / fst}
        print(f"{rows:>5} {lib:>19.1f} {fst:>13.1f} {lib / fst:>6.2f}x", flush=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"predict_cost-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
