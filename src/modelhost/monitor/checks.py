"""Constraint checks of a monitoring execution: current statistics against the baseline.

SageMaker's check types, each a violation `{"feature_name", "constraint_check_type",
"description"}` in constraint_violations.json:

- `missing_column_check`: a baseline feature the current data lacks;
- `extra_column_check`: a current column the baseline does not know;
- `data_type_check`: the share of present values of the baseline's type is below
  `datatype_check_threshold` (an Integral feature accepts integers, Fractional any number);
- `completeness_check`: the share of present values fell below the baseline completeness
  times `completeness_threshold` (monitoring_config, default 1.0);
- `categorical_values_check`: the share of values inside the baseline's domain is below
  `domain_content_threshold`;
- `baseline_drift_check`: the distribution distance (drift.py: KS for numbers, the
  categorical method's distance for strings) exceeds `comparison_threshold` /
  `categorical_comparison_threshold`; with the `Robust` method the change must also be
  significant (p-value below 0.05).

A feature's `monitoringConfigOverrides` replaces the global thresholds for it.
"""

from __future__ import annotations

from typing import Any

from modelhost.monitor import drift
from modelhost.monitor.statistics import value_type

SIGNIFICANCE = 0.05


def _by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in items}


def _sample(feature: dict[str, Any]) -> list[float]:
    kll = feature.get("numerical_statistics", {}).get("distribution", {}).get("kll", {})
    data = kll.get("sketch", {}).get("data") or []
    return [float(x) for part in data for x in part]


def _shares(feature: dict[str, Any]) -> dict[str, float]:
    body = feature.get("string_statistics", {}).get("distribution", {})
    return {
        str(b["value"]): float(b["count"]) for b in body.get("categorical", {}).get("buckets", [])
    }


def distances(baseline: dict[str, Any], current: dict[str, Any]) -> dict[str, float]:
    """The drift distances of one feature (see drift.py); empty when not comparable."""
    if "numerical_statistics" in baseline and "numerical_statistics" in current:
        return drift.numeric_distances(_sample(baseline), _sample(current))
    if "string_statistics" in baseline and "string_statistics" in current:
        return drift.categorical_distances(_shares(baseline), _shares(current))
    return {}


def _violation(name: str, check: str, description: str) -> dict[str, str]:
    return {"feature_name": name, "constraint_check_type": check, "description": description}


def evaluate(
    baseline_stats: dict[str, Any],
    constraints: dict[str, Any],
    current_stats: dict[str, Any],
    current_values: dict[str, list[Any]],
) -> tuple[list[dict[str, str]], dict[str, dict[str, float]]]:
    """(violations, per-feature drift distances) of the current data."""
    config = constraints.get("monitoring_config") or {}
    base = _by_name(baseline_stats.get("features", []))
    rules = _by_name(constraints.get("features", []))
    cur = _by_name(current_stats.get("features", []))
    violations: list[dict[str, str]] = []
    for name in rules:
        if name not in cur:
            violations.append(
                _violation(name, "missing_column_check", f"Baseline feature {name} is missing.")
            )
    for name in cur:
        if name not in rules:
            violations.append(
                _violation(name, "extra_column_check", f"Column {name} is not in the baseline.")
            )
    found: dict[str, dict[str, float]] = {}
    for name, rule in rules.items():
        if name not in cur:
            continue
        settings = {**config, **(rule.get("monitoringConfigOverrides") or {})}
        violations += _feature_checks(name, rule, settings, current_values.get(name, []))
        if (
            name in base
            and settings.get("distribution_constraints", {}).get("perform_comparison", "Enabled")
            == "Enabled"
        ):
            measured = distances(base[name], cur[name])
            if not measured:
                continue  # the type changed: data_type_check reports it
            found[name] = measured
            drifted = _drift_violation(name, measured, settings)
            if drifted is not None:
                violations.append(drifted)
    return violations, found


def _feature_checks(
    name: str, rule: dict[str, Any], settings: dict[str, Any], values: list[Any]
) -> list[dict[str, str]]:
    out = []
    present = [v for v in values if v is not None]
    kind = rule.get("inferred_type")
    if kind in ("Integral", "Fractional") and present:
        accepted = {"Integral"} if kind == "Integral" else {"Integral", "Fractional"}
        share = sum(value_type(v) in accepted for v in present) / len(present)
        threshold = float(settings.get("datatype_check_threshold", 1.0))
        if share < threshold:
            out.append(
                _violation(
                    name,
                    "data_type_check",
                    f"Data type match requirement is not met. Expected data type: {kind}, "
                    f"Expected match: {threshold:.1%}. Observed: Only {share:.1%} of data is "
                    f"{kind}.",
                )
            )
    if values:
        completeness = len(present) / len(values)
        wanted = float(rule.get("completeness", 1.0)) * float(
            settings.get("completeness_threshold", 1.0)
        )
        if completeness < wanted - 1e-12:
            out.append(
                _violation(
                    name,
                    "completeness_check",
                    f"Data completeness requirement is not met. Expected completeness: "
                    f"{wanted:.1%}. Observed completeness: {completeness:.1%}.",
                )
            )
    domain = (rule.get("string_constraints") or {}).get("domains")
    if domain and present:
        allowed = set(map(str, domain))
        unknown = sorted({str(v) for v in present} - allowed)
        share = sum(str(v) in allowed for v in present) / len(present)
        threshold = float(settings.get("domain_content_threshold", 1.0))
        if share < threshold:
            out.append(
                _violation(
                    name,
                    "categorical_values_check",
                    f"Data content requirement is not met. Expected: {threshold:.1%} of values "
                    f"within the baseline domain. Observed: {share:.1%}; values outside it: "
                    f"{', '.join(unknown[:10])}.",
                )
            )
    return out


def _drift_violation(
    name: str, found: dict[str, float], settings: dict[str, Any]
) -> dict[str, str] | None:
    dist = settings.get("distribution_constraints") or {}
    robust = dist.get("comparison_method", "Robust") == "Robust"
    if "ks" in found:
        value, pvalue = found["ks"], found["ks_pvalue"]
        threshold = float(dist.get("comparison_threshold", 0.1))
    else:
        method = dist.get("categorical_drift_method", "LInfinity")
        value = found["js"] if method == "JensenShannon" else found["linf"]
        pvalue = found["chi_square_pvalue"]
        threshold = float(dist.get("categorical_comparison_threshold", 0.1))
    if value <= threshold or (robust and pvalue >= SIGNIFICANCE):
        return None
    return _violation(
        name,
        "baseline_drift_check",
        f"Baseline drift distance: {value:.4f} exceeds threshold: {threshold} "
        "(all distances and p-values are in the execution's drift.json).",
    )
