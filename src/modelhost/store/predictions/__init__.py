"""The prediction store: batch predictions loaded as versioned runs, read by key in ms.

Backends: embedded (SQLite file, the default), Redis, DynamoDB; `open_prediction_store`
picks one from `Settings.prediction_store_url`. `load_transform_output` loads a transform
job's output keyed by an input column.
"""

from modelhost.store.predictions.backends import open_prediction_store
from modelhost.store.predictions.base import Lookup, PredictionStore, RunInfo, ValueFormat
from modelhost.store.predictions.loader import load_transform_output

__all__ = [
    "Lookup",
    "PredictionStore",
    "RunInfo",
    "ValueFormat",
    "load_transform_output",
    "open_prediction_store",
]
