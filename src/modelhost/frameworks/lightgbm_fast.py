"""LightGBM's own predict for small dense batches, without the per-call work around it.

Why: a one-row `Booster.predict(x, num_threads=n)` on the churn model (100 trees, 69
features) costs ~30 µs of CPU, of which the C call scoring the row takes ~2.5 µs. The rest
is fixed cost per call: the Python wrapper (an `_InnerPredictor` built per call with two C
calls, the keyword dict deep-copied and formatted, the input sniffed against pandas, scipy,
narwhals and pyarrow, a third C call to size the output) and, in
`LGBM_BoosterPredictForMat`, the parameter string parsed into a full `Config` and a new
`Predictor` (buffers per OpenMP thread) made per call. A multi-model instance rarely
merges requests, so it pays this per request (bench/predict_cost.py measures it).

How: LightGBM's "fast" single-row C API, on the library's own loaded booster handle:
`LGBM_BoosterPredictForMatSingleRowFastInit` parses the parameters and builds the
`Predictor` once (one FastConfig per input dtype, made on first use, freed with
`LGBM_FastConfigFree` at `close`, which the runtime calls on unload or eviction), then
`LGBM_BoosterPredictForMatSingleRowFast` scores a row. Up to `LOOP_MAX_ROWS` rows are
scored one row per call (cheaper than the batch call's fixed cost, measured); more rows go
to `LGBM_BoosterPredictForMat` with the parameter string built once (its OpenMP loop uses
`num_threads` above `SERIAL_MAX_ROWS` rows, one thread below). Both paths run LightGBM's own
per-row predict function (same trees, missing-value rule, iteration range and objective
transform), so the answers are bit-identical to `Booster.predict`
(tests/frameworks/test_lightgbm_fast.py checks that).

Threads: a FastConfig holds per-call buffers (LightGBM 4.7 guards each with a mutex of its
own; older releases may not), so each is checked out by one caller at a time from a small
pool: concurrent callers (the event loop and the predict thread) get their own FastConfig
instead of waiting; past `MAX_CONFIGS` they fall back to the library.

Iterations: like `Booster.predict` without `num_iteration`, the range is the booster's
`best_iteration` (all iterations when it has none), read at construction. LightGBM keeps
the range of the last predictor built in the booster itself (its issue #6142), so every
call on a served booster must use the same range; the runtime only ever uses this one.

Falls back (returns None, the caller uses `Booster.predict`) for anything else: not a
C-contiguous 2-D float32/float64 numpy array (lists, pandas frames with categoricals,
scipy matrices, integer input, Fortran-ordered or strided arrays), a feature count other
than the model's, no rows, more than `MAX_CONFIGS` concurrent callers, a closed predictor,
or a non-zero status from the C API (the library call then raises its own error). Raw
scores, leaf indices, contributions and other iteration ranges are not asked of it: the
runtime never requests them.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import numpy as np

log = logging.getLogger("modelhost.frameworks")

# LightGBM's c_api.h constants.
_PREDICT_NORMAL = 0
_DTYPES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1}  # C_API_DTYPE_FLOAT32/64
_ROW_MAJOR = 1
# Rows scored one C call each; more rows use one LGBM_BoosterPredictForMat call. The
# batch call's fixed cost (a Config parsed, a Predictor built: ~5 µs more than one
# single-row call) against ~0.7 µs per row it saves (a ctypes call and two mutexes):
# `bench/predict_cost.py --lightgbm-paths` puts the crossover at 8-12 rows.
LOOP_MAX_ROWS = 8
# FastConfigs per predictor (over both dtypes): more concurrent callers use the library.
MAX_CONFIGS = 8
# Batch calls of up to this many rows score on the calling thread (`num_threads=1`);
# XGBoost's CPU predictor likewise hands dense rows to threads in blocks of 64. LightGBM
# splits a batch's rows over `num_threads` OpenMP threads, and on a busy machine the
# parallel region waits for a descheduled thread: on the loaded 2-core host, 9 rows took
# 55 µs on one thread and 1.8 ms on two, 64 rows 0.31 ms and 1.7 ms. Merged predicts (the
# instance's batcher, up to 64 rows by default) run on the event loop, where such a wait
# stalls every request.
SERIAL_MAX_ROWS = 64

# Our own function objects for the C entry points, with argument types, so Python ints
# pass as pointers without a ctypes object each (the library's `_LIB` attributes are left
# untouched). CFUNCTYPE releases the GIL during the call, as the library's calls do.
_SINGLE_ROW = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)
_FOR_MAT = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,  # handle
    ctypes.c_void_p,  # data
    ctypes.c_int,  # data_type
    ctypes.c_int32,  # nrow
    ctypes.c_int32,  # ncol
    ctypes.c_int,  # is_row_major
    ctypes.c_int,  # predict_type
    ctypes.c_int,  # start_iteration
    ctypes.c_int,  # num_iteration
    ctypes.c_char_p,  # parameter
    ctypes.c_void_p,  # out_len (int64_t*)
    ctypes.c_void_p,  # out_result (double*)
)


def _entry(lib: Any, name: str, prototype: Any) -> Any:
    return prototype(ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)


def _address(array: np.ndarray[Any, Any]) -> int:
    """The data pointer of a C-contiguous array (`array.ctypes.data` costs a few µs)."""
    try:
        # (numpy's stubs do not declare the buffer protocol ndarray has)
        return ctypes.addressof(ctypes.c_char.from_buffer(array))  # type: ignore[arg-type]
    except (TypeError, ValueError, BufferError):  # read-only: the slower way
        return int(array.ctypes.data)


class _Slot:
    """One FastConfig (for one input dtype) and its output-length cell."""

    __slots__ = ("config", "out_len", "out_len_at")

    def __init__(self, config: ctypes.c_void_p) -> None:
        self.config = config.value
        self.out_len = ctypes.c_int64()
        self.out_len_at = ctypes.addressof(self.out_len)


class FastPredictor:
    """`booster.predict(x, num_threads=n)` for dense float arrays, cheaper.

    One per loaded booster. `predict` returns the predictions (float64; 1-D, or rows x
    classes for multiclass), or None when this call is not one it takes (see the module
    docstring); it never raises for the input. `close` frees the FastConfigs.
    """

    def __init__(self, booster: Any, num_threads: int) -> None:
        from lightgbm.basic import _LIB, _safe_call

        self._booster: Any = booster
        self._lib = _LIB
        self._check = _safe_call
        self._single_row = _entry(_LIB, "LGBM_BoosterPredictForMatSingleRowFast", _SINGLE_ROW)
        self._for_mat = _entry(_LIB, "LGBM_BoosterPredictForMat", _FOR_MAT)
        self._handle = booster._handle.value
        # What Booster.predict(x) passes: start 0, num_iteration = best_iteration.
        self._num_iteration = int(booster.best_iteration)
        self._params = f"num_threads={int(num_threads)}".encode()
        self._serial = b"num_threads=1"
        self._n_features = int(booster.num_feature())
        per_row = ctypes.c_int64()
        _safe_call(
            _LIB.LGBM_BoosterCalcNumPredict(
                booster._handle,
                ctypes.c_int(1),
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(self._num_iteration),
                ctypes.byref(per_row),
            )
        )
        self._per_row = int(per_row.value)
        self._free: dict[int, list[_Slot]] = {code: [] for code in _DTYPES.values()}
        self._made = 0
        self._lock = threading.Lock()

    @property
    def configs(self) -> int:
        """FastConfigs made and not yet freed (tests and diagnostics)."""
        return self._made

    def predict(self, data: Any) -> np.ndarray[Any, Any] | None:
        if type(data) is not np.ndarray or data.ndim != 2 or not data.flags.c_contiguous:
            return None
        dtype = _DTYPES.get(data.dtype)
        rows, cols = data.shape
        if dtype is None or rows == 0 or cols != self._n_features:
            return None
        booster = self._booster  # held for the call: the handle stays valid
        if booster is None:
            return None
        out = np.empty(rows * self._per_row, dtype=np.float64)
        if rows > LOOP_MAX_ROWS:
            if not self._predict_mat(data, dtype, rows, out):
                return None
        else:
            slot = self._checkout(dtype)
            if slot is None:
                return None
            try:
                if rows == 1:  # the common case, without a further call
                    at, out_at = _address(data), _address(out)
                    done = self._single_row(slot.config, at, slot.out_len_at, out_at) == 0
                else:
                    done = self._predict_rows(slot, data, rows, out)
            finally:
                self._checkin(dtype, slot)
            if not done:
                return None
        return out if self._per_row == 1 else out.reshape(rows, self._per_row)

    def _predict_rows(
        self, slot: _Slot, data: np.ndarray[Any, Any], rows: int, out: np.ndarray[Any, Any]
    ) -> bool:
        fn, config, out_len_at = self._single_row, slot.config, slot.out_len_at
        at, out_at = _address(data), _address(out)
        row_bytes, out_bytes = data.strides[0], 8 * self._per_row
        for _ in range(rows):
            if fn(config, at, out_len_at, out_at) != 0:
                return False
            at += row_bytes
            out_at += out_bytes
        return True

    def _predict_mat(
        self, data: np.ndarray[Any, Any], dtype: int, rows: int, out: np.ndarray[Any, Any]
    ) -> bool:
        out_len = ctypes.c_int64()
        status = self._for_mat(
            self._handle,
            _address(data),
            dtype,
            rows,
            self._n_features,
            _ROW_MAJOR,
            _PREDICT_NORMAL,
            0,
            self._num_iteration,
            self._serial if rows <= SERIAL_MAX_ROWS else self._params,
            ctypes.addressof(out_len),
            _address(out),
        )
        return status == 0 and out_len.value == out.size

    # The pool: list.pop and list.append are atomic under the GIL, so taking and returning
    # a FastConfig costs no lock; each is popped by one caller at a time, so none is used
    # or freed twice. Making one, and freeing, take the lock.

    def _checkout(self, dtype: int) -> _Slot | None:
        try:
            return self._free[dtype].pop()
        except IndexError:
            return self._new_slot(dtype)

    def _checkin(self, dtype: int, slot: _Slot) -> None:
        self._free[dtype].append(slot)
        if self._booster is None:  # closed while this call ran: close may have missed it
            self._drain()

    def _new_slot(self, dtype: int) -> _Slot | None:
        with self._lock:
            if self._booster is None or self._made >= MAX_CONFIGS:
                return None
            config = ctypes.c_void_p()
            status = self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                self._booster._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(self._num_iteration),
                ctypes.c_int(dtype),
                ctypes.c_int32(self._n_features),
                ctypes.c_char_p(self._params),
                ctypes.byref(config),
            )
            if status != 0 or not config.value:
                log.debug("LGBM_BoosterPredictForMatSingleRowFastInit failed (status %d)", status)
                return None
            self._made += 1
            return _Slot(config)

    def _drain(self) -> None:
        for free in self._free.values():
            while True:
                try:
                    slot = free.pop()
                except IndexError:
                    break
                with self._lock:
                    self._made -= 1
                self._check(self._lib.LGBM_FastConfigFree(ctypes.c_void_p(slot.config)))

    def close(self) -> None:
        """Free the FastConfigs (one in use is freed as its call returns); the booster is
        the runtime's to free."""
        with self._lock:  # after this, no FastConfig is made
            self._booster = None
        self._drain()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            log.debug("freeing the fast predictor's FastConfigs failed", exc_info=True)


def fast_predictor(booster: Any, num_threads: int) -> FastPredictor | None:
    """A `FastPredictor` for `booster`, or None (with a warning) when this LightGBM lacks
    the C API it needs: the library's own path is slower, never wrong."""
    try:
        return FastPredictor(booster, num_threads)
    except Exception as exc:
        log.warning("lightgbm's fast predict path is unavailable (%s); using Booster.predict", exc)
        return None
