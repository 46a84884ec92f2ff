"""ONNX runtime: any ONNX graph on onnxruntime's CPU execution provider.

The graph says what it takes: input names, element types and shapes are read from the
session, and each request is cast and reshaped to fit (a 1-D row becomes `(1, n)`,
flat CSV rows become `(n, *dims)` for an image-like input whose dimensions are fixed),
so a mismatch is a clear 400 naming both shapes rather than onnxruntime's message.
Outputs that skl2onnx classifiers emit as a list of `{class: probability}` dicts
(ZipMap) are turned into plain `(rows, classes)` arrays.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.codecs import csv as csv_codec
from modelhost.codecs import json as json_codec
from modelhost.codecs import jsonlines as jsonlines_codec
from modelhost.codecs import npy as npy_codec
from modelhost.codecs import registry
from modelhost.errors import (
    DecodeError,
    InvalidInput,
    ModelLoadError,
    PredictionFailed,
    UnsupportedContentType,
)
from modelhost.frameworks.base import Context, Runtime, describe_files, model_files
from modelhost.resources.gpus import onnx_providers

PREFERRED = "model.onnx"
OUTPUT_ENV = "MH_INSTANCE_ONNX_OUTPUT"  # read by container.config, named in errors
_NPY_MAGIC = b"\x93NUMPY"
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : (\w+) : ")

# onnxruntime's tensor type names → numpy; string tensors are fed as numpy str arrays.
_ORT_TYPES = "float double float16 int64 int32 int16 int8 uint64 uint32 uint16 uint8 bool string"
_NUMPY_NAMES = {"float": "float32", "double": "float64", "string": "str"}
_DTYPES = {f"tensor({t})": np.dtype(_NUMPY_NAMES.get(t, t)) for t in _ORT_TYPES.split()}


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, onnxruntime type name, numpy dtype, and shape.

    `shape` holds an int for a fixed dimension and None for a symbolic one (`N`,
    `batch_size`, `None`).
    """

    name: str
    type_name: str
    dtype: np.dtype[Any]
    shape: tuple[int | None, ...]

    def shown(self) -> str:
        """`[N, 69]`: the shape as error messages show it."""
        return "[" + ", ".join("N" if d is None else str(d) for d in self.shape) + "]"


def _encode_json(prediction: Any) -> bytes:
    return json.dumps(
        {"predictions": json_codec.to_jsonable(prediction)}, default=json_codec.default
    ).encode()


class ONNXRuntime(Runtime):
    """Serves an ONNX graph (`model.onnx`, or the only `*.onnx` file) with onnxruntime.

    `Image` naming `onnx`, `MH_INSTANCE_RUNTIME=onnx`, or auto-detection of a `*.onnx`
    file. One session per instance: CPU provider, `intra_op_num_threads` =
    `OMP_NUM_THREADS`, `inter_op_num_threads` = 1.

    In, for a graph with one input: `text/csv`, `application/json` (a row, rows, an
    N-D nested list, `{"instances": …}`, `{"features": […]}`), `application/jsonlines`,
    `application/x-npy` (any shape). Values are cast to the input's element type
    (integer inputs reject fractions) and reshaped as described in the module doc.
    Graphs with several inputs take JSON only: `{"inputs": {"a": […], "b": […]}}`, or
    KServe V2's `{"inputs": [{"name": "a", "shape": [1, 2], "data": […]}, …]}` (also
    accepted for one input). String inputs take JSON only.

    Out: the graph's first output, or the one `MH_INSTANCE_ONNX_OUTPUT` names (a name or
    an index; set it in the model's `Environment`), e.g. `probabilities` or
    `output_probability` for a skl2onnx classifier whose first output is the label.
    Accept (default `application/json`): `application/json` `{"predictions": <output as
    nested lists>}`; `text/csv` one row per line; `application/jsonlines` one row per
    line; `application/x-npy`.
    """

    name: ClassVar[str] = "onnx"
    content_types = (registry.CSV, registry.JSON, registry.JSONLINES, registry.NPY)
    accept_types = (registry.JSON, registry.CSV, registry.JSONLINES, registry.NPY)
    encoders: ClassVar[Mapping[str, registry.Encoder]] = {
        **registry.ENCODERS,
        registry.JSON: _encode_json,
    }
    default_accept = registry.JSON
    # For script mode's default input_fn: lossless for any float graph (cast later).
    input_dtype: ClassVar[DTypeLike] = np.float64
    # A one-row skl2onnx pipeline runs in 4-13 µs; an unknown graph may cost far more,
    # but its requests are large too (an image is ~600 KiB), so only small bodies run
    # inline, and the container's inline budget demotes a model that is slow anyway.
    inline_max_bytes = 16 * 1024

    def __init__(self, *args: Any, output: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: Any = None
        self._inputs: list[InputSpec] = []
        self._outputs: list[str] = []
        self._output = ""
        # The instance config reads MH_INSTANCE_ONNX_OUTPUT from the model's Environment;
        # an explicit argument wins for embedding and tests.
        self._output_request = output or self.options.onnx_output

    @classmethod
    def detect(cls, model_dir: Path) -> bool:
        return any(p.suffix.lower() == ".onnx" for p in model_files(model_dir))

    @property
    def model(self) -> Any:
        return self._session

    @property
    def inputs(self) -> list[InputSpec]:
        """The graph's inputs, in graph order."""
        return list(self._inputs)

    @property
    def output_name(self) -> str:
        """The output the runtime answers with."""
        return self._output

    def load(self, model_dir: Path) -> None:
        import onnxruntime  # deferred: only ONNX instances pay for it

        path = self._find_model_file(model_dir)
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = self.options.nthread
        opts.inter_op_num_threads = 1
        opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3  # converted graphs log harmless warnings at load
        # Idle worker threads would spin on CPUs shared with other instances.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            # From the path, not bytes, so external weights beside the graph load too.
            session = onnxruntime.InferenceSession(
                str(path),
                opts,
                providers=onnx_providers(self.options.gpu, onnxruntime.get_available_providers()),
            )
        except Exception as exc:
            if not _is_ort_error(exc):
                raise
            raise ModelLoadError(
                f"{path.name} is not an ONNX model onnxruntime {onnxruntime.__version__} can "
                f"load ({_ort_message(exc)}): export it with torch.onnx.export or "
                "skl2onnx.to_onnx and ship the whole file"
            ) from None
        self._inputs = [_input_spec(arg) for arg in session.get_inputs()]
        self._outputs = [arg.name for arg in session.get_outputs()]
        self._output = self._pick_output(path.name)
        self._session = session
        self.model_dir = model_dir

    def _find_model_file(self, model_dir: Path) -> Path:
        graphs = [p for p in model_files(model_dir) if p.suffix.lower() == ".onnx"]
        for path in graphs:
            if path.name == PREFERRED:
                return path
        if len(graphs) == 1:
            return graphs[0]
        if graphs:
            raise ModelLoadError(
                f"Several ONNX graphs in {model_dir} ({', '.join(p.name for p in graphs)}): "
                f"name the one to serve '{PREFERRED}'"
            )
        raise ModelLoadError(
            f"No model file found in {model_dir}: expected '{PREFERRED}' or one *.onnx file "
            f"for the onnx runtime; files present: {describe_files(model_dir)}"
        )

    def _pick_output(self, file_name: str) -> str:
        wanted = self._output_request
        if wanted is None:
            return self._outputs[0]
        if wanted in self._outputs:
            return wanted
        if wanted.isdigit() and int(wanted) < len(self._outputs):
            return self._outputs[int(wanted)]
        raise ModelLoadError(
            f"{OUTPUT_ENV}={wanted!r} names no output of {file_name}: its outputs are "
            f"{', '.join(self._outputs)} (give a name or an index)"
        )

    def guess_content_type(self, body: bytes) -> str:
        if body.startswith(_NPY_MAGIC):
            return registry.NPY
        return super().guess_content_type(body)

    def handle(
        self, body: bytes, content_type: str | None, accept: str | None, context: Context
    ) -> tuple[bytes, str]:
        """decode → cast/reshape per input → run → encode (the base flow, but the decoded
        request may name several inputs, so it is not one array)."""
        if not body:
            raise InvalidInput("Empty request body: send at least one record")
        media = registry.canonical(content_type or self.guess_content_type(body))
        if media not in self.content_types:
            raise UnsupportedContentType(content_type, self.content_types)
        data = self._decode(body, media)
        out_media = self.response_type(accept)
        return self.encode(self.predict(data), out_media), out_media

    def _decode(self, body: bytes, media: str) -> Any:
        if media == registry.JSON:
            return self._from_json(json_codec.loads(body))
        if len(self._inputs) != 1:
            raise DecodeError(
                f"The model has {len(self._inputs)} inputs ({self._input_names()}): send "
                'application/json {"inputs": {"<name>": [...], ...}}'
            )
        if media == registry.NPY:
            return npy_codec.load(body)
        spec = self._inputs[0]
        # Parse straight into a float input's own type: no double rounding via float64.
        dtype = spec.dtype if spec.dtype.kind == "f" else np.float64
        if media == registry.CSV:
            return csv_codec.decode(body, dtype)
        return jsonlines_codec.decode(body, dtype)

    def _from_json(self, doc: Any) -> Any:
        if isinstance(doc, dict) and "inputs" in doc:
            inputs = doc["inputs"]
            if isinstance(inputs, dict):
                return inputs
            if isinstance(inputs, list) and inputs and all(isinstance(t, dict) for t in inputs):
                return {str(t.get("name")): _v2_tensor(t) for t in inputs}
            return inputs  # TF Serving's columnar {"inputs": <tensor>} for one input
        return json_codec.extract_rows(doc)

    def predict(self, data: Any) -> Any:
        """Run the graph on one input's data or on a `{name: data}` mapping."""
        names = [spec.name for spec in self._inputs]
        if isinstance(data, Mapping):
            unknown = [n for n in data if n not in names]
            missing = [n for n in names if n not in data]
            if unknown or missing:
                raise InvalidInput(
                    f"Input names do not match the model: unknown {unknown or 'none'}, "
                    f"missing {missing or 'none'}; the model's inputs are {self._input_names()}"
                )
            feeds = {spec.name: _prepare(spec, data[spec.name]) for spec in self._inputs}
        elif len(self._inputs) == 1:
            feeds = {names[0]: _prepare(self._inputs[0], data)}
        else:
            raise InvalidInput(
                f"The model has {len(names)} inputs ({self._input_names()}): send JSON "
                '{"inputs": {"<name>": [...], ...}}'
            )
        try:
            result = self._session.run([self._output], feeds)[0]
        except Exception as exc:
            if not _is_ort_error(exc):
                raise
            raise PredictionFailed(f"Prediction failed: {_ort_message(exc)}") from None
        return _plain(result)

    def _input_names(self) -> str:
        return ", ".join(f"{s.name} {s.type_name} {s.shown()}" for s in self._inputs)

    def unload(self) -> None:
        self._session = None
        super().unload()


def _input_spec(arg: Any) -> InputSpec:
    # A sequence or map input gets dtype object: requests cannot build one, but a
    # script's own predict_fn may still feed the session.
    dtype = _DTYPES.get(arg.type, np.dtype(object))
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
    return InputSpec(arg.name, arg.type, dtype, shape)


def _v2_tensor(tensor: dict[str, Any]) -> Any:
    if "name" not in tensor or "data" not in tensor:
        raise DecodeError('Malformed JSON: each of "inputs" needs "name" and "data"')
    data = tensor["data"]
    shape = tensor.get("shape")
    if shape is None:
        return data
    try:
        return np.asarray(data).reshape([int(d) for d in shape])
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"Malformed JSON: input {tensor['name']!r}: {exc}") from None


def _prepare(spec: InputSpec, value: Any) -> NDArray[Any]:
    return _fit_shape(spec, _cast(spec, value))


def _cast(spec: InputSpec, value: Any) -> NDArray[Any]:
    target = spec.dtype
    if isinstance(value, np.ndarray) and value.dtype == target:
        return value
    if target.kind == "O":
        raise InvalidInput(
            f"Input '{spec.name}' has type {spec.type_name}, which the onnx runtime cannot "
            "build from a request: add code/inference.py with a predict_fn"
        )
    try:
        if target.kind in "fU":
            return np.asarray(value, dtype=target)  # JSON null becomes NaN
        array = np.asarray(value)
        if array.dtype.kind == target.kind or (array.dtype.kind in "iu" and target.kind in "iu"):
            return array.astype(target)
        array = array.astype(np.float64)
    except (ValueError, TypeError) as exc:
        raise DecodeError(
            f"Input '{spec.name}' takes {spec.type_name} values: {_first_line(exc)}"
        ) from None
    if target.kind == "b":
        if not np.isin(array, (0.0, 1.0)).all():
            raise InvalidInput(f"Input '{spec.name}' is {spec.type_name}: send true/false or 0/1")
    elif not (np.isfinite(array).all() and (array == np.round(array)).all()):
        raise InvalidInput(
            f"Input '{spec.name}' is {spec.type_name}: every value must be a whole number"
        )
    return array.astype(target)


def _fit_shape(spec: InputSpec, array: NDArray[Any]) -> NDArray[Any]:
    shape = spec.shape
    rank = len(shape)
    fixed = all(d is not None for d in shape[1:])
    if array.ndim == rank - 1 and rank > 1:
        array = array[np.newaxis]  # one example without its batch axis
    elif rank == 1 and array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)  # a CSV column, or one JSON row, for an [N] input
    elif rank > 2 and array.ndim == 2 and fixed:
        dims = [d for d in shape[1:] if d is not None]
        if array.shape[1] == math.prod(dims):
            array = array.reshape(array.shape[0], *dims)  # flat rows of an image-like input
    if array.ndim != rank:
        raise InvalidInput(
            f"Shape mismatch for input '{spec.name}': the model expects {rank}-D "
            f"{spec.shown()}, the request has {list(array.shape)}"
        )
    for axis, (want, got) in enumerate(zip(shape, array.shape, strict=True)):
        if want is None or want == got:
            continue
        if rank == 2 and axis == 1:
            raise InvalidInput(
                f"Feature count mismatch: the model expects {want} features, row 1 has {got}"
            )
        raise InvalidInput(
            f"Shape mismatch for input '{spec.name}': the model expects {spec.shown()}, "
            f"the request has {list(array.shape)}"
        )
    return array


def _plain(value: Any) -> Any:
    """An output as a numpy array: ZipMap's list of dicts becomes (rows, classes)."""
    if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
        classes = list(value[0])  # the classifier's class order; ZipMap values are float
        return np.array([[row[c] for c in classes] for row in value], dtype=np.float32)
    if isinstance(value, np.ndarray) and value.dtype == object and value.size:
        # String labels: a str array is writable as npy without pickle.
        return value.astype(np.str_) if isinstance(value.flat[0], str) else value
    return value if isinstance(value, np.ndarray) else np.asarray(value)


def _is_ort_error(exc: BaseException) -> bool:
    # onnxruntime's exceptions (Fail, InvalidArgument, InvalidProtobuf, …) share no base
    # class beyond Exception; they all live in its pybind module.
    return type(exc).__module__.startswith("onnxruntime")


def _ort_message(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return _ORT_PREFIX.sub(r"\1: ", text) or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
