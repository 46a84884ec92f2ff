"""Raw customer record → the 69 model features, in the order the model was trained on."""

from __future__ import annotations

import numpy as np

from modelhost.testing.churn import encode_features


def encode(customer: dict) -> np.ndarray:
    columns = {key: np.array([value]) for key, value in customer.items() if key != "id"}
    return encode_features(columns)[0]
