"""The answer formats of SageMaker's XGBoost container (algorithm mode).

Two kinds of output, both resolved once at load into an `OutputPlan` so a request only
runs the encoder of the media type it asked for:

- Default (`SAGEMAKER_INFERENCE_OUTPUT` unset): the booster's raw predictions.
  `text/csv` is what the container's gunicorn path writes: in real time the values
  joined by commas on **one line** (`0.1,0.7,0.2` for three rows); with
  `SAGEMAKER_BATCH` one value per line plus a trailing newline. A multi-output row
  (`multi:softprob`) is written as Python's list text, `[0.1, 0.9]`, exactly as
  SageMaker's `",".join(map(str, preds.tolist()))` does. `application/json` is
  `{"predictions": [{"score": v}, ...]}`, `application/jsonlines` one `{"score": v}`
  per line, each line ending in a newline (SageMaker's `json_to_jsonlines`).
- Selectable (`SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probabilities,...`): per row
  a record with the asked keys, derived from the objective exactly as the container's
  `serve_utils.get_selected_predictions` does (`raw_scores` of a binary model is
  `[1 - s, s]` for every binary objective, as there). Keys the objective does not
  support, or that `SAGEMAKER_INFERENCE_SUPPORTED` leaves out, are NaN. JSON wraps the
  records in `{"predictions": [...]}`; JSON Lines writes one per line; CSV writes the
  values in the asked order, one row per line, lists quoted (`1,"[0.4, 0.6]"`);
  `application/x-recordio-protobuf` one Record per row with each key a float32 tensor
  in its `label` map.

Numbers are written with Python's shortest round-trip repr (what `str(float)` gives),
so a float32 score parses back to the very value the booster produced.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelhost.codecs import npy, recordio, registry
from modelhost.errors import ModelLoadError

log = logging.getLogger(__name__)

PREDICTED_LABEL = "predicted_label"
LABELS = "labels"
PROBABILITY = "probability"
PROBABILITIES = "probabilities"
RAW_SCORE = "raw_score"
RAW_SCORES = "raw_scores"
PREDICTED_SCORE = "predicted_score"
# Also the key order of a JSON record (the order SageMaker's container builds it in).
SELECTABLE_KEYS = (
    PREDICTED_LABEL,
    LABELS,
    PROBABILITY,
    PROBABILITIES,
    RAW_SCORE,
    RAW_SCORES,
    PREDICTED_SCORE,
)

DEFAULT_ACCEPT_TYPES = (registry.CSV, registry.JSON, registry.JSONLINES, registry.NPY)
SELECTABLE_ACCEPT_TYPES = (registry.CSV, registry.JSON, registry.JSONLINES, recordio.MEDIA_TYPE)

Encoder = Callable[[Any], bytes]
Column = Callable[[NDArray[Any]], list[Any]]


@dataclass(frozen=True)
class OutputPlan:
    """The media types a loaded model answers in, and one encoder per type."""

    accept_types: tuple[str, ...]
    encoders: Mapping[str, Encoder]


# --- default output ---------------------------------------------------------------------


def score_plan(*, batch: bool) -> OutputPlan:
    """The container's answer when no selectable output is configured."""
    csv_encoder = _scores_csv_batch if batch else _scores_csv
    return OutputPlan(
        DEFAULT_ACCEPT_TYPES,
        {
            registry.CSV: csv_encoder,
            registry.JSON: _scores_json,
            registry.JSONLINES: _scores_jsonlines,
            registry.NPY: npy.encode,
        },
    )


def _as_list(prediction: Any) -> list[Any]:
    values = np.asarray(prediction).tolist()
    return values if isinstance(values, list) else [values]


def _scores_csv(prediction: Any) -> bytes:
    return ",".join(map(str, _as_list(prediction))).encode()


def _scores_csv_batch(prediction: Any) -> bytes:
    return ("\n".join(map(str, _as_list(prediction))) + "\n").encode()


def _scores_json(prediction: Any) -> bytes:
    return json.dumps({"predictions": [{"score": s} for s in _as_list(prediction)]}).encode()


def _scores_jsonlines(prediction: Any) -> bytes:
    return "".join(json.dumps({"score": s}) + "\n" for s in _as_list(prediction)).encode()


# --- selectable output ------------------------------------------------------------------


def _values(p: NDArray[Any]) -> list[Any]:
    return p.tolist()


def _row_max(p: NDArray[Any]) -> list[Any]:
    return p.reshape(len(p), -1).max(axis=1).tolist()


def _row_argmax(p: NDArray[Any]) -> list[Any]:
    return p.reshape(len(p), -1).argmax(axis=1).tolist()


def _complement_pairs(p: NDArray[Any]) -> list[Any]:
    # Python floats, as SageMaker computes `1.0 - score.item()` (float64 arithmetic).
    return [[1.0 - s, s] for s in p.tolist()]


def _above(cut: float) -> Column:
    def column(p: NDArray[Any]) -> list[Any]:
        return (p > cut).astype(np.int64).tolist()

    return column


def _constant(value: Any) -> Column:
    def column(p: NDArray[Any]) -> list[Any]:
        return [value] * len(p)

    return column


def objective_columns(objective: str, num_class: int) -> dict[str, Column] | None:
    """The keys an objective supports and how each is computed; None: no selectable output.

    SageMaker's container lists binary:logistic/logitraw/hinge, multi:softmax/softprob
    and four reg:* objectives; every reg:* objective and count:poisson are accepted here
    too (they have the same single score).
    """
    labels: list[int] = [0, 1] if objective.startswith("binary:") else list(range(num_class))
    if objective == "binary:logistic":
        return {
            PREDICTED_LABEL: _above(0.5),
            LABELS: _constant(labels),
            PROBABILITY: _values,
            PROBABILITIES: _complement_pairs,
            RAW_SCORE: _values,
            RAW_SCORES: _complement_pairs,
        }
    if objective == "binary:logitraw":
        return {
            PREDICTED_LABEL: _above(0.0),
            LABELS: _constant(labels),
            RAW_SCORE: _values,
            RAW_SCORES: _complement_pairs,
        }
    if objective in ("binary:hinge", "multi:softmax"):
        # The prediction already is the label (a float, as the container returns it).
        return {
            PREDICTED_LABEL: _values,
            LABELS: _constant(labels),
            RAW_SCORE: _values,
            RAW_SCORES: _complement_pairs,
        }
    if objective == "multi:softprob":
        return {
            PREDICTED_LABEL: _row_argmax,
            LABELS: _constant(labels),
            PROBABILITY: _row_max,
            PROBABILITIES: _values,
            RAW_SCORE: _row_max,
            RAW_SCORES: _values,
        }
    if objective.startswith("reg:") or objective == "count:poisson":
        return {PREDICTED_SCORE: _values}
    return None


@dataclass(frozen=True)
class _Selection:
    """Computes the records of one prediction; `requested` is the CSV column order."""

    columns: tuple[tuple[str, Column], ...]
    requested: tuple[str, ...]
    batch: bool

    def records(self, prediction: Any) -> list[dict[str, Any]]:
        p = np.asarray(prediction)
        if p.ndim == 0:
            p = p.reshape(1)
        keys = [key for key, _ in self.columns]
        values = [column(p) for _, column in self.columns]
        return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]

    def json(self, prediction: Any) -> bytes:
        return json.dumps({"predictions": self.records(prediction)}).encode()

    def jsonlines(self, prediction: Any) -> bytes:
        return "".join(json.dumps(r) + "\n" for r in self.records(prediction)).encode()

    def recordio(self, prediction: Any) -> bytes:
        # One Record per row, each key a float32 tensor under `label` (scalars as [v]).
        return recordio.frame(
            recordio.encode_record({k: v if isinstance(v, list) else [v] for k, v in r.items()})
            for r in self.records(prediction)
        )

    def csv(self, prediction: Any) -> bytes:
        requested = self.requested
        lines = [
            ",".join(_csv_field(record[key]) for key in requested)
            for record in self.records(prediction)
        ]
        text = "\n".join(lines)
        return (text + "\n" if self.batch else text).encode()


def _csv_field(value: Any) -> str:
    # SageMaker writes `'"{}"'.format(list)`: the list's Python text, quoted.
    return f'"{value}"' if isinstance(value, list) else str(value)


def selectable_plan(
    objective: str,
    num_class: int,
    keys: Sequence[str],
    *,
    supported: Sequence[str] | None = None,
    batch: bool = False,
) -> OutputPlan:
    """The plan for `SAGEMAKER_INFERENCE_OUTPUT=keys` on a model trained with `objective`.

    Raises `ModelLoadError` when the objective has no selectable outputs (SageMaker's
    container answers every request with a 500 then; failing the load says it once).
    """
    available = objective_columns(objective, num_class)
    if available is None:
        raise ModelLoadError(
            f"SAGEMAKER_INFERENCE_OUTPUT is set but the model's objective {objective!r} has "
            "no selectable outputs (binary:*, multi:softmax, multi:softprob and reg:* "
            "have): unset SAGEMAKER_INFERENCE_OUTPUT to get the raw scores"
        )
    allowed = set(available)
    if supported is not None:
        allowed &= set(supported)
    asked = list(dict.fromkeys(keys))
    valid = [key for key in SELECTABLE_KEYS if key in asked and key in allowed]
    invalid = [key for key in asked if key not in valid]
    if invalid:
        log.warning(
            "SAGEMAKER_INFERENCE_OUTPUT keys %s are not available for objective %s "
            "(available: %s); they are answered as NaN",
            ", ".join(invalid),
            objective,
            ", ".join(k for k in SELECTABLE_KEYS if k in allowed) or "none",
        )
    nan = _constant(float("nan"))
    columns = tuple((key, available[key]) for key in valid) + tuple((k, nan) for k in invalid)
    selection = _Selection(columns, tuple(keys), batch)
    return OutputPlan(
        SELECTABLE_ACCEPT_TYPES,
        {
            registry.CSV: selection.csv,
            registry.JSON: selection.json,
            registry.JSONLINES: selection.jsonlines,
            recordio.MEDIA_TYPE: selection.recordio,
        },
    )


def booster_objective(booster: Any) -> tuple[str, int]:
    """(objective name, class count) from a Booster's saved configuration."""
    learner = json.loads(booster.save_config())["learner"]
    objective = str(learner["objective"]["name"])
    num_class = int(learner.get("learner_model_param", {}).get("num_class", "0") or 0)
    return objective, num_class
