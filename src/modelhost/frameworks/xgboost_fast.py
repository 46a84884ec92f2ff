"""XGBoost's own predict for small dense batches, without the per-call work around it.

Why: on this project's 2-core host a one-row `Booster.inplace_predict` on the churn model
(100 trees, 69 features) costs ~190 µs, of which the trees take ~3 µs. The rest is fixed
cost per call: the Python wrapper (~2/3: keyword checks, the input's type sniffed
against pandas/arrow/polars/cudf, two JSON documents built, a class defined per call to
wrap the output) and, in the C API, a new proxy DMatrix per call whose constructor reads
the cgroup CPU quota files. A multi-model instance with many hot models rarely merges
requests, so it pays this per request (bench/predict_cost.py measures it).

How: the same C function `inplace_predict` ends in (`XGBoosterPredictFromDense`), called
with the config document built once at load, a proxy DMatrix made once per predictor,
and the input's array interface formatted from its pointer and shape. The trees, the
missing-value rule and the objective's transform are XGBoost's own, so the answers are
bit-identical to `inplace_predict` (tests/frameworks/test_xgboost_fast.py checks that).

Falls back (returns None, the caller uses `inplace_predict`) for anything else: not a
C-contiguous 2-D float32 array, another thread inside this predictor (the proxy is
shared state), or a non-zero return from the C API (the library call then raises its
own error).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import numpy as np

log = logging.getLogger("modelhost.frameworks")

# The document `inplace_predict(data, validate_features=False)` sends, field for field.
_CONFIG = (
    b'{"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, '
    b'"missing": NaN, "strict_shape": false, "cache_id": 0}'
)
_INTERFACE = (
    '{"data": [%d, true], "strides": null, "descr": [["", "<f4"]], '
    '"typestr": "<f4", "shape": [%d, %d], "version": 3}'
)


class FastPredictor:
    """`booster.inplace_predict(x, validate_features=False)` for 2-D float32 arrays, cheaper.

    One per loaded booster. `predict` returns the predictions, or None when this call
    is not one it takes (see the module docstring); it never raises for the input.
    """

    def __init__(self, booster: Any) -> None:
        from xgboost.core import _LIB, _check_call, c_bst_ulong

        self._booster = booster
        self._fn = _LIB.XGBoosterPredictFromDense
        self._proxy = ctypes.c_void_p()
        _check_call(_LIB.XGProxyDMatrixCreate(ctypes.byref(self._proxy)))
        self._free = _LIB.XGDMatrixFree
        self._shape = ctypes.POINTER(c_bst_ulong)()
        self._dims = c_bst_ulong()
        self._preds = ctypes.POINTER(ctypes.c_float)()
        self._out_args = (
            ctypes.byref(self._shape),
            ctypes.byref(self._dims),
            ctypes.byref(self._preds),
        )
        self._lock = threading.Lock()

    def predict(self, data: Any) -> np.ndarray[Any, Any] | None:
        if not (
            type(data) is np.ndarray
            and data.ndim == 2
            and data.dtype == np.float32
            and data.flags.c_contiguous
        ):
            return None
        rows, cols = data.shape
        if rows == 0 or not self._lock.acquire(blocking=False):
            return None
        try:
            if self._booster is None:  # closed
                return None
            interface = (_INTERFACE % (data.ctypes.data, rows, cols)).encode()
            status = self._fn(
                self._booster.handle, interface, _CONFIG, self._proxy, *self._out_args
            )
            if status != 0:
                return None
            shape = tuple(int(self._shape[i]) for i in range(self._dims.value))
            size = 1
            for n in shape:  # not np.prod: a few µs per call on a tuple this small
                size *= n
            out = np.empty(shape, dtype=np.float32)
            # The buffer is XGBoost's, reused by its next call: copy it out now.
            ctypes.memmove(out.ctypes.data, self._preds, size * 4)
            return out
        finally:
            self._lock.release()

    def close(self) -> None:
        """Free the proxy DMatrix (the booster is the runtime's to free)."""
        with self._lock:
            if self._proxy:
                self._free(self._proxy)
                self._proxy = ctypes.c_void_p()
            self._booster = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            log.debug("freeing the fast predictor's proxy failed", exc_info=True)
