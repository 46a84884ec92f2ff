"""Script mode for the pipeline's first container (SageMaker's scikit-learn image).

The model is a fitted ColumnTransformer, which has no `predict`, so `model_fn` loads it
and `predict_fn` calls `transform`. The answer is always text/csv: the next container
(XGBoost) reads CSV, and in a serial pipeline the Content-Type of this answer becomes the
Content-Type of the next request.
"""

from __future__ import annotations

import os

import joblib
from churn_preprocess import to_csv, transform


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def transform_fn(model, body, content_type, accept):
    if (content_type or "").split(";")[0].strip() != "text/csv":
        raise ValueError(f"send text/csv raw customer rows, not {content_type}")
    return to_csv(transform(model, body)), "text/csv"
