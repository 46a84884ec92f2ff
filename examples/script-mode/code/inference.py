"""Script mode, as SageMaker's inference toolkit runs it: modelhost imports this file from
the model's code/ directory and calls the handlers below.

The request is a JSON object of named raw fields (what an application has), not the 69
encoded features the model wants; input_fn does the encoding, output_fn shapes the answer.
"""

from __future__ import annotations

import json

import numpy as np
import xgboost as xgb
from churn_features import encode  # a helper module shipped beside this file


def model_fn(model_dir):
    booster = xgb.Booster()
    with open(f"{model_dir}/xgboost-model", "rb") as f:
        booster.load_model(bytearray(f.read()))
    return booster


def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError(f"send application/json, not {content_type}")
    customers = json.loads(body)
    return customers if isinstance(customers, list) else [customers]


def predict_fn(customers, model):
    X = np.array([encode(c) for c in customers], dtype=np.float32)
    return [
        (c.get("id"), float(p)) for c, p in zip(customers, model.inplace_predict(X), strict=True)
    ]


def output_fn(predictions, accept):
    answer = [{"id": i, "churn_probability": p, "churn": p >= 0.5} for i, p in predictions]
    return json.dumps(answer), "application/json"
