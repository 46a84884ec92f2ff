"""Compiled-model runtime: tree ensembles compiled to a shared library (or to ONNX).

A compilation job (`modelhost.compile`) writes an artifact holding `modelhost-compiled.json`
(the marker: which backend to serve, the feature count, the output form) beside
`model.so` (C code from Treelite + TL2cgen, built with the machine's C compiler) and/or
`model.onnx`. The Neo image URIs (`xgboost-neo`, `sklearn-neo`, ...) select this runtime,
and so does the marker whatever the image says.

The shared library exports `mh_predict_batch(x, nrow, ncol, pred_margin, out)`: rows of
float32 (XGBoost) or float64 (LightGBM, scikit-learn) values, NaN for missing, scored in
one C loop, so one row costs one ctypes call and no per-row Python.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.codecs import registry
from modelhost.codecs.media import choose_accept
from modelhost.frameworks import xgboost_output
from modelhost.frameworks.base import Runtime
from modelhost.frameworks.errors import InvalidInput, ModelLoadError, PredictionFailed

MARKER = "modelhost-compiled.json"
MARKER_FORMAT = 1
LIBRARY = "model.so"
ONNX_MODEL = "model.onnx"


def read_marker(model_dir: Path) -> dict[str, Any]:
    """The marker of a compiled artifact; `ModelLoadError` when absent or unreadable."""
    path = model_dir / MARKER
    try:
        marker: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(
            f"{model_dir} holds no {MARKER}: deploy the ModelArtifacts of a COMPLETED "
            "compilation job with a Neo image, or use the framework's own image"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{MARKER} could not be read: {exc}") from None
    if marker.get("format") != MARKER_FORMAT:
        raise ModelLoadError(
            f"{MARKER} has format {marker.get('format')!r}; this modelhost reads format "
            f"{MARKER_FORMAT}: compile the model again with this version"
        )
    return marker


class CompiledLibrary:
    """A compiled tree ensemble loaded with ctypes. Thread-safe: the C code keeps no state.

    Each instance loads its own copy of the file: `dlopen` of a path it has seen returns
    the first library loaded from it, so callers pass a path no other model uses (or, as
    the compiled tier, the same model's). `close` dlcloses it: the dynamic linker counts
    the loads of one path, so the library leaves the process with the last `close`.
    """

    def __init__(self, path: Path, num_feature: int, num_output: int, dtype: str) -> None:
        try:
            self._lib: Any = ctypes.CDLL(str(path))
        except OSError as exc:
            raise ModelLoadError(f"{path.name} could not be loaded: {exc}") from None
        self.num_feature = num_feature
        self.num_output = num_output
        self.dtype: DTypeLike = np.float32 if dtype == "float32" else np.float64
        leaf = self._lib_str("get_leaf_output_type")
        self.leaf_dtype: DTypeLike = np.float32 if leaf == "float32" else np.float64
        fn = self._lib.mh_predict_batch
        fn.restype = None
        fn.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_int32,
            ctypes.c_int32,
            ctypes.c_void_p,
        ]
        self._fn: Any = fn

    def close(self) -> None:
        """Release this load of the library (idempotent). Only once no call can be in
        flight: a call after it would jump into unmapped code."""
        lib, self._lib, self._fn = self._lib, None, None
        if lib is not None:
            import _ctypes  # CPython's own dlopen/dlclose, as ctypes.CDLL uses them

            _ctypes.dlclose(lib._handle)

    def floats(self, name: str, count: int) -> Any:
        """The library's global `float name[count]`, writable (the compiled tier's
        base margins: compile/tier.py)."""
        return (ctypes.c_float * count).in_dll(self._lib, name)

    def _lib_str(self, name: str) -> str:
        fn = getattr(self._lib, name)
        fn.restype = ctypes.c_char_p
        value: bytes = fn()
        return value.decode()

    def predict(self, rows: NDArray[Any], margin: bool = False) -> NDArray[Any]:
        """Scores of `rows` (n × num_feature; NaN = missing) as an n × num_output array."""
        x = np.ascontiguousarray(rows, dtype=self.dtype)
        n = int(x.shape[0])
        out = np.empty((n, self.num_output), dtype=self.leaf_dtype)
        if n:
            self._fn(x.ctypes.data, n, int(x.shape[1]), int(margin), out.ctypes.data)
        return out


class _OnnxModel:
    """The ONNX form of the same model, run by onnxruntime (one thread, as the C form)."""

    def __init__(self, path: Path, output_index: int, num_output: int) -> None:
        import onnxruntime  # deferred: only ONNX-chosen artifacts need it

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(path), opts, providers=["CPUExecutionProvider"]
        )
        graph_input = self._session.get_inputs()[0]
        self._input = graph_input.name
        # The converters build float32 graphs whatever the framework's own precision.
        self._dtype: DTypeLike = np.float64 if graph_input.type == "tensor(double)" else np.float32
        self._output_index = output_index
        self._num_output = num_output

    def predict(self, rows: NDArray[Any]) -> NDArray[Any]:
        x = np.ascontiguousarray(rows, dtype=self._dtype)
        result = self._session.run(None, {self._input: x})[self._output_index]
        out = np.asarray(result)
        out = out.reshape(out.shape[0], -1)
        if self._num_output == 1 and out.shape[1] == 2:
            return out[:, 1:]  # binary classifiers: the positive class, as the original
        return out


class CompiledRuntime(Runtime):
    """Serves a compiled tree ensemble with the answers of the framework it came from.

    Outputs: scores (XGBoost and LightGBM, and scikit-learn regressors) encoded as that
    framework's runtime does (`text/csv` by default), or, for scikit-learn classifiers,
    class labels as the scikit-learn runtime answers them (JSON by default).
    """

    name: ClassVar[str] = "compiled"
    content_types = (
        registry.CSV,
        registry.JSON,
        registry.JSONLINES,
        registry.NPY,
    )
    accept_types = (registry.CSV, registry.JSON, registry.JSONLINES, registry.NPY)
    default_accept = registry.CSV
    # One row is a few microseconds; a 64 KiB CSV body is well under a thread hop.
    inline_max_bytes = 64 * 1024
    can_batch = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lib: CompiledLibrary | None = None
        self._onnx: _OnnxModel | None = None
        self._marker: dict[str, Any] = {}
        self._n_features = 0
        self._labels: NDArray[Any] | None = None
        self._encoders: Mapping[str, registry.Encoder] = registry.SCORE_ENCODERS
        self._cast32 = False

    @classmethod
    def detect(cls, model_dir: Path) -> bool:
        return (model_dir / MARKER).is_file()

    @property
    def model(self) -> Any:
        return self._lib or self._onnx

    @property
    def num_features(self) -> int:
        return self._n_features

    def load(self, model_dir: Path) -> None:
        marker = read_marker(model_dir)
        dtype = str(marker.get("input_dtype", "float32"))
        self._n_features = int(marker["num_feature"])
        if marker.get("backend") == "onnx":
            self._onnx = _OnnxModel(
                model_dir / ONNX_MODEL,
                int(marker.get("onnx_output_index", 0)),
                int(marker["num_output"]),
            )
        else:
            self._lib = CompiledLibrary(
                model_dir / LIBRARY, self._n_features, int(marker["num_output"]), dtype
            )
        self.input_dtype = np.float32 if dtype == "float32" else np.float64  # type: ignore[misc]
        self._cast32 = bool(marker.get("cast_float32"))
        if marker.get("output") == "labels":
            self._labels = np.asarray(marker.get("classes") or [])
            self._encoders = registry.ENCODERS
            self.default_accept = registry.JSON  # type: ignore[misc]
        elif marker.get("source_framework") == "xgboost":
            self._encoders = xgboost_output.score_plan(batch=self.options.batch).encoders
        self._marker = marker
        self.model_dir = model_dir

    def response_type(self, accept: str | None) -> str:
        default = self.options.default_accept or self.default_accept
        return choose_accept(accept, self.accept_types, default)

    def encode(self, prediction: Any, media: str) -> bytes:
        encoder = self._encoders[media]
        if self.options.batch and media in (registry.CSV, registry.JSONLINES):
            body = encoder(prediction)
            return body if body.endswith(b"\n") else body + b"\n"
        return encoder(prediction)

    def validate(self, data: Any) -> None:
        width = data.shape[-1] if getattr(data, "ndim", 0) >= 1 else 0
        if width != self._n_features:
            raise InvalidInput(
                f"Feature count mismatch: the model expects {self._n_features} features, "
                f"row 1 has {width}"
            )

    def batch_rows(self, data: Any) -> int:
        if type(data) is np.ndarray and data.ndim == 2 and data.dtype == self.input_dtype:
            return int(data.shape[0])
        return 0

    def scores(self, data: Any) -> NDArray[Any]:
        """Raw model output, n × outputs, before labels or squeezing."""
        rows = np.asarray(data, dtype=self.input_dtype)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2:
            raise InvalidInput(f"Expected rows of features (a 2-D array), got {rows.ndim}-D")
        self.validate(rows)
        if self._cast32:
            # scikit-learn's trees compare float32 copies of the input; so must we.
            rows = rows.astype(np.float32).astype(np.float64)
        try:
            if self._lib is not None:
                return self._lib.predict(rows)
            assert self._onnx is not None
            return self._onnx.predict(rows)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise PredictionFailed(f"Prediction failed: {exc}") from None

    def predict(self, data: Any) -> Any:
        out = self.scores(data)
        if self._labels is not None:
            index = (out[:, 0] > 0.5).astype(int) if out.shape[1] == 1 else out.argmax(axis=1)
            return self._labels[index]
        return out[:, 0] if out.shape[1] == 1 else out

    def release_native(self) -> None:
        if self._lib is not None:
            self._lib.close()  # dlclose: the caller made sure no call is in flight
            self._lib = None

    def unload(self) -> None:
        self._lib = None
        self._onnx = None
        super().unload()
