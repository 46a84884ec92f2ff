"""Feature-attribution drift for tree models (SageMaker Clarify's ModelExplainability monitor).

Clarify explains a model with Kernel SHAP over a background dataset; for XGBoost and
LightGBM the framework computes exact TreeSHAP contributions itself (XGBoost
`pred_contribs=True`, LightGBM `pred_contrib=True`), cheaper and without sampling noise,
so modelhost uses those. The flow mirrors Clarify's:

- `global_attributions(contributions)`: one value per feature over a dataset (Clarify's
  `agg_method`: `mean_abs` by default, `median`, `mean_sq`), and the expected value (the
  bias column's mean);
- `analysis(...)`: Clarify's `analysis.json` shape
  (`explanations.kernel_shap.<label>.global_shap_values`), which is also the baseline's
  constraints file;
- `ndcg(baseline, live)`: Clarify's drift score. Features are ranked by their live
  attribution; each position gains the feature's *baseline* attribution, discounted by
  log2(position + 1); the sum is divided by the ideal (baseline-ranked) sum. 1 means the
  live ranking keeps the baseline's order of importance (scikit-learn's `ndcg_score`,
  which Clarify's documentation points to);
- `violations(...)`: a `feature_attribution_drift_check` per label whose nDCG is below the
  threshold (Clarify's default 0.90);
- `metrics(...)`: the CloudWatch series Clarify publishes (`feature_<name>` per feature
  and `ExpectedValue`, namespace `aws/sagemaker/Endpoints/explainability-metrics`), plus
  modelhost's `ndcg`.

Pure functions over arrays and dicts, except `contributions`, which calls the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelhost.errors import DatasetError

DEFAULT_THRESHOLD = 0.90
METHOD_KEY = "kernel_shap"  # the analysis.json key Clarify's consumers read
METHOD_DIMENSION = "KernelShap"
NAMESPACE = "aws/sagemaker/Endpoints/explainability-metrics"
CHECK_TYPE = "feature_attribution_drift_check"
AGG_METHODS = ("mean_abs", "median", "mean_sq")


@dataclass(frozen=True)
class LabelAttributions:
    """One output's global attributions: per feature, and the expected value."""

    features: dict[str, float]
    expected_value: float


def _native(model: Any) -> Any:
    """The framework booster under a scikit-learn wrapper (XGBClassifier, LGBMRegressor...)."""
    if hasattr(model, "get_booster"):
        return model.get_booster()
    if hasattr(model, "booster_"):
        return model.booster_
    return model


def contributions(model: Any, rows: NDArray[Any]) -> list[NDArray[np.float64]]:
    """Per output (one for regression/binary, one per class for multiclass), an array
    rows x (features + 1) of SHAP contributions, the last column the bias."""
    booster = _native(model)
    data = np.asarray(rows, dtype=float)
    if data.ndim != 2 or data.shape[0] == 0:
        raise DatasetError("attributions need a non-empty two-dimensional dataset")
    module = type(booster).__module__.split(".")[0]
    if module == "xgboost":
        import xgboost

        out = np.asarray(booster.predict(xgboost.DMatrix(data), pred_contribs=True))
        if out.ndim == 3:  # rows x classes x (features + 1)
            return [out[:, k, :] for k in range(out.shape[1])]
        return [out]
    if module == "lightgbm":
        out = np.asarray(booster.predict(data, pred_contrib=True))
        width = data.shape[1] + 1
        # Multiclass: the classes' blocks side by side, each (features + 1) wide.
        return [out[:, k : k + width] for k in range(0, out.shape[1], width)]
    raise DatasetError(
        f"feature attributions need an XGBoost or LightGBM model, not {type(booster).__name__}"
    )


def global_attributions(
    contribs: NDArray[Any], headers: Sequence[str], agg_method: str = "mean_abs"
) -> LabelAttributions:
    """One output's contributions (rows x (features + 1)) aggregated per feature."""
    values = np.asarray(contribs, dtype=float)
    if values.shape[1] != len(headers) + 1:
        raise DatasetError(f"{len(headers)} headers for {values.shape[1] - 1} model features")
    shap = values[:, :-1]
    if agg_method == "mean_abs":
        agg = np.mean(np.abs(shap), axis=0)
    elif agg_method == "median":
        agg = np.median(shap, axis=0)
    elif agg_method == "mean_sq":
        agg = np.mean(shap**2, axis=0)
    else:
        raise DatasetError(f"agg_method {agg_method}: one of {', '.join(AGG_METHODS)}")
    features = {name: float(v) for name, v in zip(headers, agg, strict=True)}
    return LabelAttributions(features, float(np.mean(values[:, -1])))


def label_names(count: int, label_headers: Sequence[str] | None = None) -> list[str]:
    """Clarify's label names: `label_headers` when given, else `label0`, `label1`..."""
    if label_headers and len(label_headers) == count:
        return list(label_headers)
    return [f"label{k}" for k in range(count)]


def explain(
    model: Any,
    rows: NDArray[Any],
    headers: Sequence[str],
    agg_method: str = "mean_abs",
    label_headers: Sequence[str] | None = None,
) -> dict[str, LabelAttributions]:
    """Global attributions of `model` over `rows`, per label."""
    per_output = contributions(model, rows)
    names = label_names(len(per_output), label_headers)
    return {
        name: global_attributions(c, headers, agg_method)
        for name, c in zip(names, per_output, strict=True)
    }


def analysis(explained: Mapping[str, LabelAttributions]) -> dict[str, Any]:
    """Clarify's analysis.json (also a ModelExplainability baseline's constraints)."""
    return {
        "version": "1.0",
        "explanations": {
            METHOD_KEY: {
                label: {"global_shap_values": dict(a.features), "expected_value": a.expected_value}
                for label, a in explained.items()
            }
        },
    }


def read_analysis(doc: Mapping[str, Any]) -> dict[str, LabelAttributions]:
    """The labels' attributions of an analysis.json / constraints file."""
    try:
        labels = doc["explanations"][METHOD_KEY]
        return {
            label: LabelAttributions(
                {k: float(v) for k, v in body["global_shap_values"].items()},
                float(body.get("expected_value", 0.0)),
            )
            for label, body in labels.items()
        }
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise DatasetError(
            f"not an explainability analysis (explanations.{METHOD_KEY}.<label>."
            f"global_shap_values expected): {exc}"
        ) from None


def ndcg(baseline: Mapping[str, float], live: Mapping[str, float]) -> float:
    """Clarify's nDCG of the live ranking, gains being the baseline attributions (see the
    module docstring). Features missing live count as 0; 1.0 when there is nothing to
    rank (fewer than two features, or no baseline attribution at all)."""
    names = list(baseline)
    gains = np.array([abs(baseline[n]) for n in names], dtype=float)
    if len(names) < 2 or not gains.any():
        return 1.0
    scores = np.array([abs(live.get(n, 0.0)) for n in names], dtype=float)
    # Imported here: scikit-learn takes ~0.5 s to import, and the gateway imports this
    # module at start-up for jobs it may never run.
    from sklearn.metrics import ndcg_score

    return float(ndcg_score(gains[np.newaxis, :], scores[np.newaxis, :]))


def drift(
    baseline: Mapping[str, LabelAttributions], live: Mapping[str, LabelAttributions]
) -> dict[str, float]:
    """nDCG per baseline label (a label the run did not produce scores 0)."""
    return {
        label: ndcg(b.features, live[label].features) if label in live else 0.0
        for label, b in baseline.items()
    }


def violations(
    scores: Mapping[str, float], threshold: float = DEFAULT_THRESHOLD
) -> list[dict[str, str]]:
    """constraint_violations.json entries: one per label whose nDCG is below `threshold`."""
    return [
        {
            "label": label,
            "metric_name": "shap",
            "constraint_check_type": CHECK_TYPE,
            "description": (
                f"The nDCG of the global SHAP values ({score:.4f}) is below the threshold "
                f"{threshold:g}: the features' order of importance drifted from the baseline."
            ),
        }
        for label, score in scores.items()
        if score < threshold
    ]


def metrics(
    explained: Mapping[str, LabelAttributions], scores: Mapping[str, float]
) -> list[tuple[str, dict[str, str], float]]:
    """(metric name, extra dimensions, value) of one run: Clarify's `feature_<name>`
    (ValueType GlobalShapValues) and `ExpectedValue` per label, and the label's `ndcg`."""
    out: list[tuple[str, dict[str, str], float]] = []
    for label, a in explained.items():
        dims = {"ExplainabilityMethod": METHOD_DIMENSION, "Label": label}
        for name, value in a.features.items():
            out.append((f"feature_{name}", {**dims, "ValueType": "GlobalShapValues"}, value))
        out.append(("ExpectedValue", {**dims, "ValueType": "ExpectedValue"}, a.expected_value))
        if label in scores:
            out.append(("ndcg", dims, scores[label]))
    return out
