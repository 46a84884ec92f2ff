"""The recommender's search vs the exhaustive grid on a synthetic cost/latency model.

    python bench/recommender_search.py [--seeds 5] [--noise 0.05]
    python bench/recommender_search.py --real [--types ml.c5.large,ml.c5.xlarge]
        [--workers 1,2] [--phase-s 8] [--users 4] [--p99-ms 20]

`--real` runs both searches for real instead (bench/_recommender_real.py): two Advanced
jobs through boto3 against a real server on loopback, every configuration a real endpoint
load-tested with Locust; it writes results/recommender_search_real.json.

For each landscape (three instance types x 4 worker counts x 5 batch sizes x 4 instance
counts = 240 configurations; offered load and p99 threshold vary) and each seed, runs the
exhaustive search and the smart search (loadtest/search.py) against the same simulated
measurement function (modelhost.testing.landscape: latency grows with load and shrinks
with workers/instances; each measurement costs setup + test time, less when its threshold
breaks early) and prints, per landscape, the simulated time of each, their ratio, the
points measured and how far the search's cheapest configuration is from the exhaustive
optimum. The goal (issue 15 item 4): within 10% of the optimum in at most a third of the
time. The figures are simulated, so they are reproducible and independent of the machine.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from modelhost.loadtest.search import SearchResult, exhaustive, search
from modelhost.testing.landscape import Landscape, standard_types

LANDSCAPES = [
    # (offered load req/s, p99 threshold ms)
    (100.0, 30.0),
    (400.0, 60.0),
    (800.0, 80.0),
    (1500.0, 100.0),
    (3000.0, 200.0),
    (200.0, 20.0),  # nothing meets the threshold
]


def true_cost(land: Landscape, result: SearchResult) -> float | None:
    """The noise-free cost per inference of a result's pick (None: no pick)."""
    return land.figures(result.best)[0] if result.best is not None else None


def one(load: float, threshold: float, seed: int, noise: float) -> dict[str, float | None]:
    def make() -> Landscape:
        return Landscape(
            standard_types(),
            load_rps=load,
            threshold_ms=threshold,
            noise=noise,
            seed=seed,
        )

    grid, smart = make(), make()
    full = exhaustive(grid.families(), grid.measure)
    found = search(smart.families(), smart.measure, random.Random(seed))
    best, optimum = true_cost(smart, found), true_cost(grid, full)
    gap = None if best is None or optimum is None else best / optimum - 1
    return {
        "exhaustive_s": grid.elapsed_s,
        "search_s": smart.elapsed_s,
        "exhaustive_points": grid.count,
        "search_points": smart.count,
        "gap": gap,
        "found": float(best is not None),
        "exists": float(optimum is not None),
    }


def real(args: argparse.Namespace) -> None:
    from _machine import format_machine_info, machine_info
    from _recommender_real import run_real

    print(format_machine_info(machine_info()))
    out = run_real(args)
    gap = out.get("gap")
    print(
        f"time search/exhaustive {out['time_ratio']:.2f} "
        f"({out['search']['wall_s']:.0f} s / {out['exhaustive']['wall_s']:.0f} s), "
        f"measured {out['search']['measured']}/{out['exhaustive']['measured']}, "
        f"gap {'-' if gap is None else f'{gap:.1%}'}"
    )
    same = out.get("gap_same_measurement")
    print(
        f"gap with the exhaustive run's measurement of the search's pick: "
        f"{'-' if same is None else f'{same:.1%}'}; run-to-run cost ratios of configurations "
        f"measured twice: {out['repeat_ratios']}"
    )
    path = Path(__file__).resolve().parent / "results" / "recommender_search_real.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.05, help="relative measurement noise")
    parser.add_argument("--real", action="store_true", help="real jobs on a real server")
    parser.add_argument("--types", default="ml.c5.large,ml.c5.xlarge")
    parser.add_argument("--workers", default="1,2", help="SAGEMAKER_MODEL_SERVER_WORKERS values")
    parser.add_argument("--phase-s", type=int, default=8, help="load-test seconds per config")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--p99-ms", type=int, default=20, help="ModelLatencyThresholds P99")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per job")
    args = parser.parse_args()
    if args.real:
        real(args)
        return
    header = f"{'load':>6}{'p99 ms':>8}{'grid s':>9}{'search s':>10}{'time':>7}{'points':>10}"
    print(f"noise ±{args.noise:.0%}, seeds {args.seeds}; simulated seconds, means over seeds")
    print(header + f"{'worst gap':>11}{'found':>7}")
    rows = []
    for load, threshold in LANDSCAPES:
        runs = [one(load, threshold, s, args.noise) for s in range(args.seeds)]
        grid_s = sum(float(r["exhaustive_s"] or 0) for r in runs) / len(runs)
        smart_s = sum(float(r["search_s"] or 0) for r in runs) / len(runs)
        points = sum(float(r["search_points"] or 0) for r in runs) / len(runs)
        gaps = [float(r["gap"]) for r in runs if r["gap"] is not None]
        worst = max(gaps) if gaps else None
        hits, exists = (sum(r[k] or 0 for r in runs) for k in ("found", "exists"))
        found = f"{hits:.0f}/{exists:.0f}"
        worst_text = f"{worst:>10.1%}" if worst is not None else f"{'-':>10}"
        print(
            f"{load:>6.0f}{threshold:>8.0f}{grid_s:>9.0f}{smart_s:>10.0f}"
            f"{smart_s / grid_s:>7.2f}{points:>6.0f}/{runs[0]['exhaustive_points']:.0f}"
            f" {worst_text}{found:>7}"
        )
        rows.append({"load_rps": load, "threshold_ms": threshold, "runs": runs})
    out = Path(__file__).resolve().parent / "results" / "recommender_search.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"noise": args.noise, "landscapes": rows}, indent=1))


if __name__ == "__main__":
    main()
