"""application/x-npy: a NumPy `.npy` file in the body.

`allow_pickle=False` on both sides: the toolkit unpickles request bodies, which would
let any caller run code in the instance; object arrays are refused instead.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.errors import DecodeError, EncodeError

MEDIA_TYPE = "application/x-npy"


def load(body: bytes) -> NDArray[Any]:
    """The array exactly as sent (any shape and dtype)."""
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DecodeError(f"Malformed NPY body: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise DecodeError("Malformed NPY body: expected one array, got an .npz archive")
    return array


def decode(body: bytes, dtype: DTypeLike = np.float32) -> NDArray[Any]:
    """A 2-D numeric array: 1-D becomes one row; the dtype is kept if already numeric."""
    array = load(body)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    elif array.ndim != 2:
        raise DecodeError(f"Malformed NPY body: expected a 1-D or 2-D array, got {array.ndim}-D")
    if array.dtype.kind not in "fiub":
        try:
            array = array.astype(dtype)
        except ValueError as exc:
            raise DecodeError(f"Malformed NPY body: values must be numbers ({exc})") from None
    return array


def encode(array: Any) -> bytes:
    """`np.save` bytes of the prediction."""
    buffer = io.BytesIO()
    try:
        np.save(buffer, np.asarray(array), allow_pickle=False)
    except ValueError as exc:
        raise EncodeError(f"Cannot write the prediction as application/x-npy: {exc}") from None
    return buffer.getvalue()
