"""text/libsvm (and text/x-libsvm): `[label] index:value index:value ...` per line.

Labels are optional and ignored. Like SageMaker's XGBoost container, indices are
shifted down by one when the smallest index in the request is ≥ 1 (one-based files),
so both zero- and one-based data work. Features a row does not list are *missing*
(NaN), not zero, which is what XGBoost's sparse input means. The array is as wide as
the largest index; the runtime pads it to the model's feature count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.errors import DecodeError

MEDIA_TYPE = "text/libsvm"
ALIASES = ("text/x-libsvm",)


def decode(body: bytes, dtype: DTypeLike = np.float32) -> NDArray[Any]:
    """Parse libsvm rows into a dense 2-D array with NaN for absent features."""
    rows: list[tuple[list[int], list[float]]] = []
    for line_no, line in enumerate(body.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        indices: list[int] = []
        values: list[float] = []
        for position, token in enumerate(tokens):
            key, sep, value = token.partition(b":")
            if not sep:
                if position == 0:
                    continue  # the label
                raise _error(line_no, token, "expected index:value")
            if key == b"qid":
                continue
            try:
                index = int(key)
                number = float(value)
            except ValueError:
                raise _error(line_no, token, "index must be an integer, value a number") from None
            if index < 0:
                raise _error(line_no, token, "index must be ≥ 0")
            indices.append(index)
            values.append(number)
        rows.append((indices, values))
    if not rows:
        raise DecodeError("Malformed libsvm: the body has no rows")
    all_indices = [i for indices, _ in rows for i in indices]
    shift = 1 if all_indices and min(all_indices) >= 1 else 0
    width = max(all_indices) + 1 - shift if all_indices else 0
    array = np.full((len(rows), width), np.nan, dtype=dtype)
    for r, (indices, values) in enumerate(rows):
        if indices:
            array[r, np.asarray(indices) - shift] = values
    return array


def _error(line_no: int, token: bytes, rule: str) -> DecodeError:
    shown = token.decode("utf-8", "replace")
    return DecodeError(f"Malformed libsvm: row {line_no}, token {shown!r}: {rule}")
