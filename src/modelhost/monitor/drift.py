"""Distances between a baseline distribution and the current one (numpy/scipy only).

Numeric features (from samples of values):

- `ks`: the Kolmogorov-Smirnov statistic, the largest gap between the two empirical CDFs
  (scipy.stats.ks_2samp); this is the L-infinity distribution distance SageMaker's data
  quality monitor compares against `comparison_threshold`, and what `baseline_drift_check`
  uses; `ks_pvalue` is its p-value (the "Robust" comparison also asks it to be small);
- `psi`: the population stability index over the baseline's deciles,
  sum((q - p) * ln(q / p)) with empty bins smoothed (0.1 = notable, 0.25 = large shift).

Categorical features (from value counts):

- `linf`: the largest difference of one category's share (SageMaker's `LInfinity`);
- `chi_square` / `chi_square_pvalue`: Pearson's test of the current counts against the
  baseline shares (scipy.stats.chisquare; SageMaker's `ChiSquared` method);
- `js`: the Jensen-Shannon distance (base 2, between 0 and 1; scipy.spatial.distance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats
from scipy.spatial import distance

_SMOOTH = 1e-4


def numeric_distances(baseline: Sequence[float], current: Sequence[float]) -> dict[str, float]:
    base = np.asarray(baseline, dtype=float)
    cur = np.asarray(current, dtype=float)
    if base.size == 0 or cur.size == 0:
        return {"ks": 0.0, "ks_pvalue": 1.0, "psi": 0.0}
    ks = stats.ks_2samp(base, cur)
    return {"ks": float(ks.statistic), "ks_pvalue": float(ks.pvalue), "psi": psi(base, cur)}


def psi(base: np.ndarray, cur: np.ndarray, bins: int = 10) -> float:
    edges = np.unique(np.quantile(base, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:
        # A constant baseline: the share of current values equal to it is what moved.
        p = np.array([1.0, _SMOOTH])
        same = float(np.mean(cur == edges[0]))
        q = np.array([max(same, _SMOOTH), max(1 - same, _SMOOTH)])
        return float(np.sum((q - p) * np.log(q / p)))
    inner = edges[1:-1]
    p = np.bincount(np.searchsorted(inner, base, side="right"), minlength=edges.size - 1)
    q = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=edges.size - 1)
    pf = np.maximum(p / p.sum(), _SMOOTH)
    qf = np.maximum(q / q.sum(), _SMOOTH)
    return float(np.sum((qf - pf) * np.log(qf / pf)))


def categorical_distances(
    baseline: Mapping[str, float], current: Mapping[str, float]
) -> dict[str, float]:
    keys = sorted(set(baseline) | set(current))
    p = np.array([float(baseline.get(k, 0.0)) for k in keys])
    q = np.array([float(current.get(k, 0.0)) for k in keys])
    if p.sum() <= 0 or q.sum() <= 0:
        return {"linf": 0.0, "chi_square": 0.0, "chi_square_pvalue": 1.0, "js": 0.0}
    pf, qf = p / p.sum(), q / q.sum()
    expected = np.maximum(pf, _SMOOTH)
    expected = expected / expected.sum() * q.sum()
    chi = stats.chisquare(q, expected)
    return {
        "linf": float(np.max(np.abs(pf - qf))),
        "chi_square": float(chi.statistic),
        "chi_square_pvalue": float(chi.pvalue),
        "js": float(distance.jensenshannon(pf, qf, base=2)),
    }
