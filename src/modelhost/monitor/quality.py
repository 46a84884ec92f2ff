"""Model-quality metrics, constraints and violations in Model Monitor's schema (pure).

From paired predictions and ground truth (scikit-learn's metrics):

- `BinaryClassification`: confusion_matrix, accuracy, precision, recall, f0_5, f1, f2,
  true/false positive/negative rates, and auc / au_prc when probabilities are given;
- `MulticlassClassification`: confusion_matrix, accuracy, weighted_precision,
  weighted_recall, weighted_f1 (and macro averages);
- `Regression`: mae, mse, rmse, r2.

Each metric is `{"value": v, "standard_deviation": s}`, the deviation from a seeded
bootstrap (as SageMaker reports one). Suggested constraints hold each metric's baseline
value with SageMaker's comparison operator (`LessThanThreshold` for scores,
`GreaterThanThreshold` for errors); a violation is `{"metric_name",
"constraint_check_type": <operator>, "description"}`.

Ground truth and captured predictions are paired in ground_truth.py (by inferenceId);
this module only sees the pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

BOOTSTRAP_ROUNDS = 20
ERRORS = ("mae", "mse", "rmse", "false_positive_rate", "false_negative_rate")
SECTIONS = {
    "BinaryClassification": ("binary_classification_metrics", "binary_classification_constraints"),
    "MulticlassClassification": (
        "multiclass_classification_metrics",
        "multiclass_classification_constraints",
    ),
    "Regression": ("regression_metrics", "regression_constraints"),
}

Score = Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]


def _binary_scores() -> dict[str, Score]:
    def rate(kind: str) -> Score:
        def f(y: np.ndarray, p: np.ndarray, _prob: np.ndarray | None) -> float:
            tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
            value = {"tpr": tp / (tp + fn), "tnr": tn / (tn + fp), "fpr": fp / (fp + tn)}
            value["fnr"] = fn / (fn + tp) if fn + tp else 0.0
            return float(np.nan_to_num(value[kind]))

        return f

    def fbeta(beta: float) -> Score:
        return lambda y, p, _: float(skm.fbeta_score(y, p, beta=beta, zero_division=0))

    return {
        "accuracy": lambda y, p, _: float(skm.accuracy_score(y, p)),
        "precision": lambda y, p, _: float(skm.precision_score(y, p, zero_division=0)),
        "recall": lambda y, p, _: float(skm.recall_score(y, p, zero_division=0)),
        "f0_5": fbeta(0.5),
        "f1": fbeta(1.0),
        "f2": fbeta(2.0),
        "true_positive_rate": rate("tpr"),
        "true_negative_rate": rate("tnr"),
        "false_positive_rate": rate("fpr"),
        "false_negative_rate": rate("fnr"),
    }


def _probability_scores() -> dict[str, Score]:
    def auc(y: np.ndarray, _p: np.ndarray, prob: np.ndarray | None) -> float:
        return float(skm.roc_auc_score(y, prob)) if len(set(y.tolist())) == 2 else float("nan")

    def au_prc(y: np.ndarray, _p: np.ndarray, prob: np.ndarray | None) -> float:
        return float(skm.average_precision_score(y, prob))

    return {"auc": auc, "au_prc": au_prc}


def _multiclass_scores() -> dict[str, Score]:
    def avg(fn: Any, how: str) -> Score:
        return lambda y, p, _: float(fn(y, p, average=how, zero_division=0))

    out: dict[str, Score] = {"accuracy": lambda y, p, _: float(skm.accuracy_score(y, p))}
    for how in ("weighted", "macro"):
        out[f"{how}_precision"] = avg(skm.precision_score, how)
        out[f"{how}_recall"] = avg(skm.recall_score, how)
        out[f"{how}_f1"] = avg(skm.f1_score, how)
    return out


def _regression_scores() -> dict[str, Score]:
    return {
        "mae": lambda y, p, _: float(skm.mean_absolute_error(y, p)),
        "mse": lambda y, p, _: float(skm.mean_squared_error(y, p)),
        "rmse": lambda y, p, _: float(np.sqrt(skm.mean_squared_error(y, p))),
        "r2": lambda y, p, _: float(skm.r2_score(y, p)),
    }


def _scores(problem: str, with_probability: bool) -> dict[str, Score]:
    if problem == "BinaryClassification":
        return {**_binary_scores(), **(_probability_scores() if with_probability else {})}
    if problem == "MulticlassClassification":
        return _multiclass_scores()
    if problem == "Regression":
        return _regression_scores()
    raise ValueError(
        f"problem type {problem!r}: use BinaryClassification, MulticlassClassification or "
        "Regression"
    )


def quality_statistics(
    problem: str,
    truth: Sequence[Any],
    predicted: Sequence[Any],
    probability: Sequence[float] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The model-quality statistics.json of paired ground truth and predictions."""
    if len(truth) != len(predicted) or len(truth) == 0:
        raise ValueError("model quality needs as many predictions as ground-truth labels (> 0)")
    numeric = problem == "Regression"
    y = np.asarray(truth, dtype=float if numeric else None)
    p = np.asarray(predicted, dtype=float if numeric else None)
    if problem == "BinaryClassification":
        y, p = y.astype(float).astype(int), p.astype(float).astype(int)
    prob = None if probability is None else np.asarray(probability, dtype=float)
    rng = np.random.default_rng(seed)
    samples = [rng.integers(0, len(y), len(y)) for _ in range(BOOTSTRAP_ROUNDS)]
    section: dict[str, Any] = {}
    for name, score in _scores(problem, prob is not None).items():
        value = score(y, p, prob)
        spread = [score(y[i], p[i], None if prob is None else prob[i]) for i in samples]
        section[name] = {"value": value, "standard_deviation": float(np.nanstd(spread))}
    if not numeric:
        labels = sorted(set(y.tolist()) | set(p.tolist()))
        matrix = skm.confusion_matrix(y, p, labels=labels)
        section["confusion_matrix"] = {
            str(a): {str(b): int(matrix[i][j]) for j, b in enumerate(labels)}
            for i, a in enumerate(labels)
        }
    return {"version": 0.0, "dataset": {"item_count": len(y)}, SECTIONS[problem][0]: section}


def suggest_quality_constraints(stats: dict[str, Any], problem: str) -> dict[str, Any]:
    metrics_key, constraints_key = SECTIONS[problem]
    out = {}
    for name, metric in stats[metrics_key].items():
        if name == "confusion_matrix" or not np.isfinite(metric["value"]):
            continue
        operator = "GreaterThanThreshold" if name in ERRORS else "LessThanThreshold"
        out[name] = {"threshold": metric["value"], "comparison_operator": operator}
    return {"version": 0.0, constraints_key: out}


def quality_violations(
    stats: dict[str, Any], constraints: dict[str, Any], problem: str
) -> list[dict[str, str]]:
    metrics_key, constraints_key = SECTIONS[problem]
    found = []
    for name, rule in (constraints.get(constraints_key) or {}).items():
        metric = stats[metrics_key].get(name)
        if metric is None:
            continue
        value, threshold, operator = (
            metric["value"],
            float(rule["threshold"]),
            rule["comparison_operator"],
        )
        broken = {
            "LessThanThreshold": value < threshold,
            "GreaterThanThreshold": value > threshold,
            "LessThanOrEqualToThreshold": value <= threshold,
            "GreaterThanOrEqualToThreshold": value >= threshold,
        }.get(operator, False)
        if broken:
            found.append(
                {
                    "constraint_check_type": operator,
                    "description": (
                        f"Metric {name} with {value:.4g} was {operator} '{threshold:.4g}'"
                    ),
                    "metric_name": name,
                }
            )
    return found
