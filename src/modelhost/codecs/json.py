"""application/json.

Accepted request shapes (all become a 2-D float array; `null` becomes NaN):
`[1, 2, 3]` (one row), `[[1, 2], [3, 4]]`, `{"instances": [[...], ...]}`,
`{"instances": [{"features": [...]}, ...]}` (SageMaker's JSON serializer for built-in
algorithms) and `{"features": [...]}` (one row).

Two encoders: `encode` writes `prediction.tolist()` as the inference toolkit does
(scikit-learn, script mode); `encode_scores` writes SageMaker XGBoost's
`{"predictions": [{"score": v}, ...]}`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.errors import DecodeError

MEDIA_TYPE = "application/json"

_SHAPES = 'a list of numbers, a list of rows, {"instances": [...]} or {"features": [...]}'


def loads(body: bytes | str) -> Any:
    """`json.loads` that reports failures as a 415 `DecodeError`."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"Malformed JSON: {exc}") from None


def decode(body: bytes, dtype: DTypeLike = np.float32) -> NDArray[Any]:
    """Parse a JSON body in one of the accepted shapes into a 2-D float array."""
    return rows_to_array(extract_rows(loads(body)), dtype, "JSON")


def extract_rows(doc: Any) -> list[Any]:
    """Return the list of rows a JSON document holds (a bare row becomes one row)."""
    if isinstance(doc, dict):
        if "instances" in doc:
            instances = doc["instances"]
            if not isinstance(instances, list):
                raise DecodeError('Malformed JSON: "instances" must be a list of rows')
            return [_features(item) if isinstance(item, dict) else item for item in instances]
        if "features" in doc:
            return [_features(doc)]
        raise DecodeError(f"Unsupported JSON shape: expected {_SHAPES}")
    if isinstance(doc, list):
        if doc and all(not isinstance(v, list | dict) for v in doc):
            return [doc]
        return [_features(item) if isinstance(item, dict) else item for item in doc]
    raise DecodeError(f"Unsupported JSON shape: expected {_SHAPES}")


def _features(item: dict[str, Any]) -> Any:
    if "features" not in item:
        raise DecodeError(f'Unsupported JSON shape: an object row needs "features"; {_SHAPES}')
    return item["features"]


def rows_to_array(rows: list[Any], dtype: DTypeLike, what: str) -> NDArray[Any]:
    """Turn decoded rows into a 2-D array, naming the first bad row on failure."""
    if not rows:
        raise DecodeError(f"Malformed {what}: no rows")
    width = None
    for i, row in enumerate(rows, 1):
        if not isinstance(row, list):
            raise DecodeError(f"Malformed {what}: row {i} is not a list of numbers")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise DecodeError(f"Malformed {what}: row {i} has {len(row)} values, row 1 has {width}")
    try:
        return np.array(rows, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise DecodeError(
            f"Malformed {what}: every value must be a number or null ({exc})"
        ) from None


def encode(array: Any) -> bytes:
    """The toolkit's encoding: `json.dumps(prediction.tolist())`."""
    return json.dumps(to_jsonable(array)).encode()


def encode_scores(array: Any) -> bytes:
    """SageMaker XGBoost's `{"predictions": [{"score": v}, ...]}` (v a list if multi-output)."""
    scores = np.asarray(array).tolist()
    if not isinstance(scores, list):
        scores = [scores]
    return json.dumps({"predictions": [{"score": s} for s in scores]}).encode()


def to_jsonable(value: Any) -> Any:
    """Numpy arrays and scalars become lists and Python numbers; others pass through."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


def default(value: Any) -> Any:
    """`json.dumps(default=...)` hook for numpy values nested in user predictions."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
