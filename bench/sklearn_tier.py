"""scikit-learn tree estimators in the compiled tier: one-row predict through the sklearn
runtime before the switch (scikit-learn's own predict) and after it (the compiled form),
in process, same run.

    python bench/sklearn_tier.py [--kinds rf-classifier,rf-regressor,gb-classifier,hgb-classifier]
                                 [--trees 100] [--depth 8] [--calls 300] [--rounds 5]

Fits each estimator on the churn data (`modelhost.testing.churn`: 69 features, 3,000 rows;
regressors predict a noisy mix of churn and the day's minutes;
`--trees` trees or boosting rounds, `--depth` deep), compiles it as an instance's tier
does (`modelhost.compile.tier.compile_for_tier`: Treelite + TL2cgen + gcc, checked for the
same bits on 4,000 rows), then times `SklearnRuntime.predict` on one float64 row (as the
runtime decodes a request) without and with the compiled form attached, alternating the
two round by round (ABAB) so both see the same machine. Reports the median over
`--rounds` of the per-round median µs per call, the ratio, the compile time, and checks
the answers are the same bits. The machine is shared and noisy: read the ratio, which
comes from one run, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from _machine import format_machine_info, machine_info
from modelhost.compile.tier import compile_for_tier
from modelhost.frameworks.compiled_predictor import FAILED, CompiledPredictor
from modelhost.frameworks.sklearn import SklearnRuntime
from modelhost.frameworks.sklearn_trees import same_answers
from modelhost.testing.churn import make_churn

RESULTS_DIR = Path(__file__).resolve().parent / "results"
KINDS = ("rf-classifier", "rf-regressor", "gb-classifier", "hgb-classifier")


def estimator(kind: str, trees: int, depth: int) -> Any:
    from sklearn import ensemble

    forest = {"n_estimators": trees, "max_depth": depth, "random_state": 0}
    return {
        "rf-classifier": lambda: ensemble.RandomForestClassifier(**forest),
        "rf-regressor": lambda: ensemble.RandomForestRegressor(**forest),
        "et-classifier": lambda: ensemble.ExtraTreesClassifier(**forest),
        "gb-classifier": lambda: ensemble.GradientBoostingClassifier(**forest),
        "hgb-classifier": lambda: ensemble.HistGradientBoostingClassifier(
            max_iter=trees, max_depth=depth, early_stopping=False, random_state=0
        ),
    }[kind]()


def median_us(call: Any, calls: int) -> float:
    call()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000.0


def one_kind(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    data = make_churn(3000, seed=1)
    x = np.asarray(data.X, dtype=np.float64)
    # Regressors: the churn label plus a noisy share of the day's minutes (column 2).
    noise = np.random.default_rng(3).normal(size=len(x))
    y = data.y * 5 + x[:, 2] / 50 + noise if kind.endswith("regressor") else data.y.astype(int)
    model = estimator(kind, args.trees, args.depth).fit(x, y)
    folder = tmp / kind
    folder.mkdir()
    joblib.dump(model, folder / "model.joblib")
    runtime = SklearnRuntime()
    runtime.load(folder)
    t0 = time.monotonic()
    compile_for_tier(folder, "SKLEARN", tmp / f"{kind}.tier", 600.0, max_rows=64)
    compile_s = time.monotonic() - t0
    predictor = CompiledPredictor.load(tmp / f"{kind}.tier")
    if predictor is None:
        return {"kind": kind, "refused": (tmp / f"{kind}.tier" / FAILED).read_text()}
    row = np.ascontiguousarray(make_churn(50, seed=2).X[:1], dtype=np.float64)
    framework = runtime.predict(row)
    assert runtime.attach_compiled(predictor)
    compiled = runtime.compiled
    native_us: list[float] = []
    compiled_us: list[float] = []
    for _ in range(args.rounds):
        runtime.compiled = None
        native_us.append(median_us(lambda: runtime.predict(row), args.calls))
        runtime.compiled = compiled
        compiled_us.append(median_us(lambda: runtime.predict(row), args.calls))
    assert same_answers(runtime.predict(row), framework)
    native, fast = statistics.median(native_us), statistics.median(compiled_us)
    return {
        "kind": kind,
        "trees": args.trees,
        "depth": args.depth,
        "sklearn_us": native,
        "compiled_us": fast,
        "speedup": native / fast,
        "compile_s": compile_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    info = machine_info()
    print(format_machine_info(info))
    results = []
    with tempfile.TemporaryDirectory(prefix="sklearn-tier-") as tmp:
        for kind in args.kinds.split(","):
            result = one_kind(kind, args, Path(tmp))
            results.append(result)
            if "refused" in result:
                print(f"{kind:16} refused: {result['refused']}")
                continue
            print(
                f"{kind:16} sklearn {result['sklearn_us']:9.1f} µs  compiled "
                f"{result['compiled_us']:6.1f} µs  ×{result['speedup']:6.1f}  "
                f"(compiled in {result['compile_s']:.1f} s)"
            )
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"sklearn_tier-{stamp}.json"
    out.write_text(json.dumps({"machine": info, "args": vars(args), "results": results}, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
