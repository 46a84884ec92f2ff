"""SageMaker Clarify's explainability job (`SageMakerClarifyProcessor.run_explainability`)
for tree models: the baseline a ModelExplainabilityJobDefinition compares live attributions
with.

The SDK sends a processing job of the `sagemaker-clarify-processing` image without an
`analysis_type`, with the inputs `analysis_config` (analysis_config.json at
/opt/ml/processing/input/config) and `dataset` (/opt/ml/processing/input/data) and the
output `analysis_result` (/opt/ml/processing/output). modelhost reads the configuration's
`headers`, `label` (a name or an index, left out of the features), `dataset_type`
(`text/csv`, with or without a header row), `methods.shap.agg_method` and
`label_headers`, and the model `predictor.model_name` (or `endpoint_name`) names; it
computes the exact TreeSHAP attributions of an XGBoost or LightGBM model over the dataset
(monitor/attribution.py, not Kernel SHAP's sampling) and writes Clarify's `analysis.json`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from modelhost.errors import DatasetError, ValidationException
from modelhost.jobs.explainability import (
    ANALYSIS_TYPE,
    CLARIFY_IMAGE,
    CONFIG_PATH,
    model_data_url,
)
from modelhost.monitor import attribution
from modelhost.store.metadata import Kind, MetadataStore

DATA_PATH = "/opt/ml/processing/input/data"
OUTPUT_PATH = "/opt/ml/processing/output"

Resolve = Callable[[str, str], str]  # (container path, member) -> URL
Read = Callable[[str], list[str]]  # URL (a file or a folder) -> the texts of its files


def is_baseline(request: dict[str, Any]) -> bool:
    """A Clarify job that is not a monitoring run: run_explainability's."""
    image = request["AppSpecification"]["ImageUri"].rsplit("/", 1)[-1]
    env = request.get("Environment") or {}
    return CLARIFY_IMAGE in image and env.get("analysis_type") != ANALYSIS_TYPE


def check(resolve: Resolve) -> None:
    """The configuration, the dataset and the output are mounted where the SDK puts them."""
    resolve(CONFIG_PATH, "ProcessingInputs")
    resolve(DATA_PATH, "ProcessingInputs")
    resolve(OUTPUT_PATH, "ProcessingOutputConfig")


def features(config: dict[str, Any]) -> tuple[list[str], int | None]:
    """The feature names (headers without the label) and the label's column index."""
    headers = [str(h) for h in config.get("headers") or []]
    if not headers:
        raise DatasetError("analysis_config.json needs headers (the dataset's column names)")
    label = config.get("label")
    if label is None:
        return headers, None
    index = label if isinstance(label, int) else headers.index(label) if label in headers else -1
    if not 0 <= index < len(headers):
        raise DatasetError(f"analysis_config.json label {label!r} is not one of the headers")
    return headers[:index] + headers[index + 1 :], index


def matrix(texts: list[str], headers: list[str], label: int | None) -> np.ndarray:
    """The CSV dataset's feature columns as floats (`headers` names every column; a header
    row equal to them is skipped; text that is not a number is NaN)."""

    def number(value: str) -> float:
        try:
            return float(value)
        except ValueError:
            return math.nan

    width = len(headers)
    rows = []
    for text in texts:
        for row in csv.reader(io.StringIO(text)):
            if not row or [c.strip() for c in row] == headers or len(row) != width:
                continue
            if label is not None:
                row = row[:label] + row[label + 1 :]
            rows.append([number(v) for v in row])
    if not rows:
        raise DatasetError(f"the dataset has no rows of {width} columns")
    return np.array(rows, dtype=float)


def model_url(store: MetadataStore, predictor: dict[str, Any]) -> str:
    """The ModelDataUrl of `predictor.model_name` (or of `endpoint_name`'s model)."""
    if predictor.get("endpoint_name"):
        return model_data_url(store, str(predictor["endpoint_name"]))
    name = predictor.get("model_name")
    rec = store.get(Kind.MODEL, str(name)) if name else None
    if rec is None:
        raise DatasetError(f"analysis_config.json predictor: model {name!r} does not exist")
    containers = [rec.spec.get("PrimaryContainer"), *(rec.spec.get("Containers") or [])]
    url = next((c["ModelDataUrl"] for c in containers if c and c.get("ModelDataUrl")), None)
    if not url:
        raise DatasetError(f"model {name} has no ModelDataUrl to explain")
    return str(url)


def run(
    resolve: Resolve,
    read: Read,
    write: Callable[[str, str, Any], None],
    store: MetadataStore,
    load_model: Callable[[str], Any],
) -> str:
    """Compute and write analysis.json; the job's ExitMessage."""
    configs = read(resolve(CONFIG_PATH, "ProcessingInputs"))
    if len(configs) != 1:
        raise ValidationException(f"{CONFIG_PATH}: one analysis_config.json is expected")
    config = json.loads(configs[0])
    if config.get("dataset_type", "text/csv") != "text/csv":
        raise DatasetError("this modelhost version explains text/csv datasets only")
    names, label = features(config)
    headers = [str(h) for h in config["headers"]]
    X = matrix(read(resolve(DATA_PATH, "ProcessingInputs")), headers, label)
    shap = (config.get("methods") or {}).get("shap") or {}
    model = load_model(model_url(store, config.get("predictor") or {}))
    explained = attribution.explain(
        model, X, names, shap.get("agg_method", "mean_abs"), config.get("label_headers")
    )
    output = resolve(OUTPUT_PATH, "ProcessingOutputConfig")
    write(output, "analysis.json", attribution.analysis(explained))
    return "Completed: Job completed successfully."
