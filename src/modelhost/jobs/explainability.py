"""Feature-attribution drift runs (MonitoringType `ModelExplainability`) as processing jobs.

A run of a model-explainability schedule is a processing job whose environment says
`analysis_type` MODEL_EXPLAINABILITY. It reads, like SageMaker Clarify's monitor: the
captured inputs in the window, the analysis configuration (`analysis_config`: `headers`,
`label_headers`, `methods.shap.agg_method`) and the baseline constraints (an
`analysis.json` with the baseline's global SHAP values). It loads the endpoint's model
(the first production variant's, as the endpoint serves it now; XGBoost or LightGBM),
computes TreeSHAP attributions over the captured rows (monitor/attribution.py), and
writes `analysis.json` and `constraint_violations.json` (a
`feature_attribution_drift_check` per label whose nDCG is below `ndcg_threshold`,
default 0.90). It publishes `feature_<name>`, `ExpectedValue` and `ndcg` per label to
`aws/sagemaker/Endpoints/explainability-metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.errors import DatasetError, ValidationException
from modelhost.frameworks.registry import runtime_class
from modelhost.monitor import attribution
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.metadata import Kind, MetadataStore

ANALYSIS_TYPE = "MODEL_EXPLAINABILITY"
CLARIFY_IMAGE = "sagemaker-clarify-processing"
CONFIG_PATH = "/opt/ml/processing/input/config"
TREE_RUNTIMES = ("xgboost", "lightgbm")

Write = Callable[[str, Any], None]  # (file name, JSON document) in the output


def check(request: dict[str, Any], analyzer_image: str, resolve: Callable[[str], str]) -> None:
    """The image and the environment of a CreateProcessingJob request: the analyzer image
    runs every analysis, Clarify's image only attribution drift, which names its analysis
    configuration (`resolve` maps a container path to its input, or raises)."""
    image = request["AppSpecification"]["ImageUri"]
    env = request.get("Environment") or {}
    explains = env.get("analysis_type") == ANALYSIS_TYPE
    name = image.rsplit("/", 1)[-1]
    if analyzer_image not in name and CLARIFY_IMAGE not in name:
        raise ValidationException(
            f"AppSpecification.ImageUri {image}: this modelhost version runs processing jobs "
            f"for the model monitor analyzer image ({analyzer_image}) and {CLARIFY_IMAGE} "
            "(attribution drift runs, and run_explainability's job for tree models) only."
        )
    if not explains:
        return
    if not env.get("analysis_config"):
        raise ValidationException(
            "Environment.analysis_config is required by a MODEL_EXPLAINABILITY run (a "
            "container path under the analysis configuration's ProcessingInput LocalPath)."
        )
    resolve(env["analysis_config"])
    threshold = env.get("ndcg_threshold")
    try:
        ok = threshold is None or 0.0 < float(threshold) <= 1.0
    except ValueError:
        ok = False
    if not ok:
        raise ValidationException(f"Environment.ndcg_threshold {threshold}: a number in (0, 1].")


def model_data_url(store: MetadataStore, endpoint: str) -> str:
    """The ModelDataUrl of the model the endpoint's first production variant serves."""
    rec = store.get(Kind.ENDPOINT, endpoint)
    if rec is None:
        raise DatasetError(f"endpoint {endpoint} does not exist")
    variants = rec.spec["Config"].get("ProductionVariants") or []
    if not variants:
        raise DatasetError(f"endpoint {endpoint} has no production variant")
    model = (rec.spec.get("Models") or {}).get(variants[0]["ModelName"]) or {}
    containers = [model["PrimaryContainer"]] if model.get("PrimaryContainer") else []
    containers = containers or list(model.get("Containers") or [])
    url = next((c["ModelDataUrl"] for c in containers if c.get("ModelDataUrl")), None)
    if not url:
        raise DatasetError(f"endpoint {endpoint}'s model has no ModelDataUrl to explain")
    return str(url)


def load_tree_model(model_dir: Path) -> Any:
    """The XGBoost or LightGBM booster in `model_dir` (the runtimes' own loaders)."""
    for name in TREE_RUNTIMES:
        cls = runtime_class(name)
        if cls.detect(model_dir):
            runtime = cls()
            runtime.load(model_dir)
            return runtime.model
    raise DatasetError(
        "feature attributions need an XGBoost or LightGBM model; the endpoint's artifact is neither"
    )


def _matrix(lines: list[str], headers: list[str]) -> np.ndarray:
    """Captured inputs as a float matrix in `headers` order (missing or text: NaN)."""
    from modelhost.monitor import analyzer  # scipy and scikit-learn: see processing_analysis

    data = analyzer.read_captures(lines, headers)
    columns = [data.columns.get(name, [None] * data.rows) for name in headers]

    def number(value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    return np.array([[number(c[i]) for c in columns] for i in range(data.rows)], dtype=float)


class Explainability:
    """Runs MODEL_EXPLAINABILITY analyses (see the module docstring)."""

    def __init__(self, store: MetadataStore, artifacts: Callable[[], ArtifactStore]) -> None:
        self.store = store
        self._artifacts = artifacts  # made on first use: most servers never explain

    def load_model(self, url: str) -> Any:
        """A model artifact's tree model, read from the artifact cache (its entry leased
        while it is read: the bounded cache never evicts it under the load)."""
        with self._artifacts().use(url) as model_dir:
            return load_tree_model(model_dir)

    def analyze(
        self,
        env: dict[str, Any],
        lines: list[str],
        constraints: dict[str, Any],
        config: dict[str, Any],
        write: Write,
    ) -> tuple[list[dict[str, str]], list[tuple[str, dict[str, str], float]]]:
        """Write analysis.json and constraint_violations.json; the violations and the
        (metric, dimensions, value) series of the run."""
        baseline = attribution.read_analysis(constraints)
        first = next(iter(baseline.values()), None)
        headers = list(config.get("headers") or (first.features if first else []))
        if not headers:
            raise DatasetError("no feature names: give analysis_config headers")
        if not lines:
            raise DatasetError("no captured data in the analysis window")
        shap = (config.get("methods") or {}).get("shap") or {}
        model = self.load_model(model_data_url(self.store, env["sagemaker_endpoint_name"]))
        live = attribution.explain(
            model,
            _matrix(lines, headers),
            headers,
            shap.get("agg_method", "mean_abs"),
            config.get("label_headers"),
        )
        scores = attribution.drift(baseline, live)
        threshold = float(env.get("ndcg_threshold") or attribution.DEFAULT_THRESHOLD)
        violations = attribution.violations(scores, threshold)
        write("analysis.json", attribution.analysis(live))
        write("constraint_violations.json", {"version": "1.0", "violations": violations})
        return violations, attribution.metrics(live, scores)


def put_metric_data(
    env: dict[str, Any], series: list[tuple[str, dict[str, str], float]]
) -> list[dict[str, Any]]:
    """The PutMetricData calls of a run: Clarify's namespace and dimensions."""
    base = {
        "Endpoint": env.get("sagemaker_endpoint_name", ""),
        "MonitoringSchedule": env.get("sagemaker_monitoring_schedule_name", ""),
    }
    data = [
        {
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in {**base, **dims}.items()],
            "Value": value,
            "Unit": "None",
        }
        for name, dims, value in series
    ]
    return [
        {"Namespace": attribution.NAMESPACE, "MetricData": data[i : i + 500]}
        for i in range(0, len(data), 500)
    ]
