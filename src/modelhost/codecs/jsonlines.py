"""application/jsonlines: one JSON record per line.

Each request line is a JSON array of numbers or `{"features": [...]}`. Responses are
one record per line joined by "\\n" (like CSV): `encode` writes each prediction row as
JSON, `encode_scores` writes SageMaker XGBoost's `{"score": v}`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.codecs import json as json_codec
from modelhost.errors import DecodeError

MEDIA_TYPE = "application/jsonlines"


def decode(body: bytes, dtype: DTypeLike = np.float32) -> NDArray[Any]:
    """Parse one row per non-blank line into a 2-D float array."""
    rows: list[Any] = []
    for i, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(f"Malformed JSON Lines: line {i}: {exc}") from None
        if isinstance(record, dict):
            if "features" not in record:
                raise DecodeError(f'Malformed JSON Lines: line {i}: an object needs "features"')
            record = record["features"]
        rows.append(record)
    return json_codec.rows_to_array(rows, dtype, "JSON Lines")


def encode(array: Any, *, trailing_newline: bool = False) -> bytes:
    """One JSON value per prediction row."""
    values = np.asarray(array)
    rows = values.tolist() if values.ndim else [values.item()]
    return _join([json.dumps(row) for row in rows], trailing_newline)


def encode_scores(array: Any, *, trailing_newline: bool = False) -> bytes:
    """SageMaker XGBoost's `{"score": v}` per line."""
    values = np.asarray(array)
    rows = values.tolist() if values.ndim else [values.item()]
    return _join([json.dumps({"score": row}) for row in rows], trailing_newline)


def _join(lines: list[str], trailing_newline: bool) -> bytes:
    text = "\n".join(lines)
    return (text + "\n" if trailing_newline and text else text).encode()
