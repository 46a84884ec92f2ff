"""statistics.json and constraints.json in Model Monitor's schema, from a Dataset.

statistics.json (what the data looked like):

    {"version": 0.0, "dataset": {"item_count": N}, "features": [
      {"name": "Day Mins", "inferred_type": "Fractional", "numerical_statistics": {
         "common": {"num_present": N, "num_missing": 0}, "mean": ..., "sum": ...,
         "std_dev": ..., "min": ..., "max": ...,
         "distribution": {"kll": {"buckets": [{"lower_bound": ..., "upper_bound": ...,
           "count": ...}], "sketch": {"parameters": {"c": 0.64, "k": 2048.0},
           "data": [[...sorted sample...]]}}}}},
      {"name": "State", "inferred_type": "String", "string_statistics": {
         "common": {...}, "distinct_count": 51, "distribution": {"categorical":
           {"buckets": [{"value": "CA", "count": 97}, ...]}}}}]}

The sketch holds an evenly spaced sample of at most `SKETCH_K` sorted values: the
distribution the drift distances compare (a user may edit it like any other number).

constraints.json (what the data must look like) is suggested from the statistics:
inferred type, completeness, `is_non_negative` for numbers, the domain of categorical
strings (at most `MAX_DOMAIN` distinct values), and the `monitoring_config` thresholds.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from modelhost.monitor.dataset import Dataset

SKETCH_K = 2048
HISTOGRAM_BUCKETS = 10
MAX_DOMAIN = 100

MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}


def value_type(value: Any) -> str:
    """Integral, Fractional or String, for one present value."""
    if isinstance(value, bool):
        return "String"
    if isinstance(value, int):
        return "Integral"
    if isinstance(value, float):
        return "Fractional"
    text = str(value).strip()
    try:
        int(text)
        return "Integral"
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return "String"
    return "Fractional" if math.isfinite(number) else "String"


def infer_type(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "Unknown"
    kinds = {value_type(v) for v in present}
    if kinds == {"Integral"}:
        return "Integral"
    if kinds <= {"Integral", "Fractional"}:
        return "Fractional"
    return "String"


def _common(values: list[Any]) -> dict[str, int]:
    present = sum(v is not None for v in values)
    return {"num_present": present, "num_missing": len(values) - present}


def sketch(numbers: np.ndarray) -> list[float]:
    """An evenly spaced sample of at most SKETCH_K of the sorted values."""
    ordered = np.sort(numbers)
    if ordered.size > SKETCH_K:
        ordered = ordered[np.linspace(0, ordered.size - 1, SKETCH_K).round().astype(int)]
    return [float(x) for x in ordered]


def numeric_feature(name: str, kind: str, values: list[Any]) -> dict[str, Any]:
    numbers = np.array([float(v) for v in values if v is not None], dtype=float)
    stats: dict[str, Any] = {"common": _common(values)}
    if numbers.size:
        counts, edges = np.histogram(numbers, bins=HISTOGRAM_BUCKETS)
        stats.update(
            mean=float(numbers.mean()),
            sum=float(numbers.sum()),
            std_dev=float(numbers.std()),
            min=float(numbers.min()),
            max=float(numbers.max()),
            distribution={
                "kll": {
                    "buckets": [
                        {"lower_bound": float(lo), "upper_bound": float(hi), "count": float(c)}
                        for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
                    ],
                    "sketch": {
                        "parameters": {"c": 0.64, "k": float(SKETCH_K)},
                        "data": [sketch(numbers)],
                    },
                }
            },
        )
    return {"name": name, "inferred_type": kind, "numerical_statistics": stats}


def string_feature(name: str, kind: str, values: list[Any]) -> dict[str, Any]:
    counts = Counter(str(v) for v in values if v is not None)
    return {
        "name": name,
        "inferred_type": kind,
        "string_statistics": {
            "common": _common(values),
            "distinct_count": float(len(counts)),
            "distribution": {
                "categorical": {
                    "buckets": [{"value": v, "count": c} for v, c in sorted(counts.items())]
                }
            },
        },
    }


def statistics(data: Dataset) -> dict[str, Any]:
    """statistics.json of `data` (see the module docstring)."""
    features = []
    for name, values in data.columns.items():
        kind = infer_type(values)
        if kind in ("Integral", "Fractional"):
            features.append(numeric_feature(name, kind, values))
        else:
            features.append(string_feature(name, kind, values))
    return {"version": 0.0, "dataset": {"item_count": data.rows}, "features": features}


def suggest_constraints(stats: dict[str, Any]) -> dict[str, Any]:
    """constraints.json suggested from statistics.json (see the module docstring)."""
    out = []
    for feature in stats["features"]:
        body = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        common = body.get("common", {})
        total = common.get("num_present", 0) + common.get("num_missing", 0)
        item: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": (common.get("num_present", 0) / total) if total else 1.0,
        }
        if "numerical_statistics" in feature:
            item["num_constraints"] = {"is_non_negative": body.get("min", 0.0) >= 0}
        else:
            buckets = body.get("distribution", {}).get("categorical", {}).get("buckets", [])
            if 0 < len(buckets) <= MAX_DOMAIN:
                item["string_constraints"] = {"domains": [b["value"] for b in buckets]}
        out.append(item)
    return {"version": 0.0, "features": out, "monitoring_config": MONITORING_CONFIG}
