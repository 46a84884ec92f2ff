"""Open Inference Protocol (V2) tensors ⇄ what a SageMaker container understands.

Pure conversion, no HTTP: `parse_request` reads a V2 infer request (JSON, or JSON plus
binary tensor data when `Inference-Header-Content-Length` is given); `to_container` turns
its inputs into one `/invocations` body; `from_container` turns the container's answer back
into a tensor; `encode_response` writes the V2 response (binary outputs when asked).

What the container receives (docs/protocols.md):

- one numeric input of rank 1 or 2: `text/csv`, one row per line (a rank-1 tensor is one
  row), the format every built-in runtime and most users' servers read;
- anything else (several inputs, rank > 2, BYTES): `application/json`, the nested list of
  the one input, or `{"<name>": nested list, ...}` for several;
- `parameters.content_type` (MLServer's name for it) picks `text/csv`,
  `application/json` or `application/x-npy` instead; `parameters.accept` is sent as
  `Accept`.

The answer becomes one output (named by the request's first requested output, else
`predict`): NPY keeps its dtype; CSV and JSON numbers become FP64 (lossless for the text);
SageMaker XGBoost's `{"predictions": [{"score": ...}]}` is unpacked; anything else is one
BYTES element holding the body.
"""

from __future__ import annotations

import io
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelhost.codecs import csv as csv_codec
from modelhost.errors import DecodeError, ValidationError

DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
_NAMES = {np.dtype(t).str: name for name, t in DTYPES.items() if name != "BYTES"}
CSV, JSON, NPY = "text/csv", "application/json", "application/x-npy"
CONTENT_TYPES = (CSV, JSON, NPY)
DEFAULT_OUTPUT = "predict"


@dataclass
class Tensor:
    name: str
    shape: list[int]
    datatype: str
    array: NDArray[Any]


@dataclass
class Request:
    """A parsed V2 infer request."""

    id: str | None
    inputs: list[Tensor]
    parameters: dict[str, Any]
    outputs: list[tuple[str, bool]]  # requested output names, binary or not
    binary_output: bool  # the request-level default (`binary_data_output`)
    extra: dict[str, Any] = field(default_factory=dict)


def _refuse(message: str) -> ValidationError:
    return ValidationError(message)


def datatype_of(array: NDArray[Any]) -> str:
    if array.dtype == np.object_ or array.dtype.kind in "SU":
        return "BYTES"
    name = _NAMES.get(array.dtype.str) or _NAMES.get(array.dtype.newbyteorder("<").str)
    if name is None:
        raise _refuse(f"the model answered an array of dtype {array.dtype}, which V2 lacks")
    return name


def _read_json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refuse(f"malformed JSON in the inference request: {exc}") from None
    if not isinstance(doc, dict):
        raise _refuse("the inference request must be a JSON object")
    return doc


def parse_request(body: bytes, header_length: int | None) -> Request:
    """The request; `header_length` is `Inference-Header-Content-Length` (binary data
    follows the JSON header), None for an all-JSON body."""
    if header_length is not None and not 0 < header_length <= len(body):
        raise _refuse(
            f"Inference-Header-Content-Length {header_length} is outside the body's "
            f"{len(body)} bytes"
        )
    doc = _read_json(body if header_length is None else body[:header_length])
    binary = memoryview(body)[header_length:] if header_length is not None else memoryview(b"")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _refuse("'inputs' must be a non-empty list of tensors")
    inputs, offset = [], 0
    for i, raw in enumerate(raw_inputs):
        tensor, offset = _input(raw, i, binary, offset)
        inputs.append(tensor)
    if offset != len(binary):
        raise _refuse(f"{len(binary) - offset} bytes of binary data follow the last input")
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _refuse("'parameters' must be an object")
    outputs = []
    for raw in doc.get("outputs") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise _refuse("each of 'outputs' must be an object with a 'name'")
        params = raw.get("parameters") or {}
        outputs.append((raw["name"], bool(params.get("binary_data", False))))
    request_id = doc.get("id")
    return Request(
        id=str(request_id) if request_id is not None else None,
        inputs=inputs,
        parameters=parameters,
        outputs=outputs,
        binary_output=bool(parameters.get("binary_data_output", False)),
    )


def _input(raw: Any, i: int, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    if not isinstance(raw, dict):
        raise _refuse(f"inputs[{i}] must be an object")
    name, shape, datatype = raw.get("name"), raw.get("shape"), raw.get("datatype")
    if not isinstance(name, str) or not name:
        raise _refuse(f"inputs[{i}].name must be a non-empty string")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _refuse(f"inputs[{i}].shape must be a list of non-negative integers")
    if datatype not in DTYPES:
        raise _refuse(f"inputs[{i}].datatype must be one of {', '.join(DTYPES)}")
    count = math.prod(shape)
    size = (raw.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise _refuse(f"inputs[{i}].parameters.binary_data_size exceeds the binary data")
        chunk = bytes(binary[offset : offset + size])
        offset += size
        array = _from_binary(chunk, datatype, i)
    else:
        if "data" not in raw:
            raise _refuse(f"inputs[{i}] has neither 'data' nor binary_data_size")
        array = _from_json(raw["data"], datatype, i)
    if array.size != count:
        raise _refuse(f"inputs[{i}] has {array.size} values, its shape {shape} needs {count}")
    return Tensor(name, shape, datatype, array.reshape(shape)), offset


def _from_json(data: Any, datatype: str, i: int) -> NDArray[Any]:
    if datatype == "BYTES":
        flat = np.array(data, dtype=np.object_).reshape(-1)
        return np.array([v.encode() if isinstance(v, str) else v for v in flat], np.object_)
    try:
        return np.array(data, dtype=DTYPES[datatype]).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise _refuse(f"inputs[{i}].data does not hold {datatype} values: {exc}") from None


def _from_binary(chunk: bytes, datatype: str, i: int) -> NDArray[Any]:
    if datatype != "BYTES":
        itemsize = np.dtype(DTYPES[datatype]).itemsize
        if len(chunk) % itemsize:
            raise _refuse(f"inputs[{i}] binary data is not a whole number of {datatype}")
        return np.frombuffer(chunk, dtype=np.dtype(DTYPES[datatype]).newbyteorder("<"))
    items, pos = [], 0
    while pos < len(chunk):  # each element: a little-endian u32 length, then the bytes
        if pos + 4 > len(chunk):
            raise _refuse(f"inputs[{i}] BYTES data is truncated")
        (length,) = struct.unpack_from("<I", chunk, pos)
        items.append(chunk[pos + 4 : pos + 4 + length])
        pos += 4 + length
    if pos != len(chunk):
        raise _refuse(f"inputs[{i}] BYTES data is truncated")
    return np.array(items, dtype=np.object_)


def _jsonable(array: NDArray[Any]) -> Any:
    if array.dtype == np.object_:
        return (
            np.vectorize(
                lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v,
                otypes=[np.object_],
            )(array).tolist()
            if array.size
            else []
        )
    return array.tolist()


def to_container(request: Request) -> tuple[str, bytes]:
    """(Content-Type, body) of the `/invocations` request for `request`'s inputs."""
    wanted = request.parameters.get("content_type")
    if wanted is not None and wanted not in CONTENT_TYPES:
        raise _refuse(f"parameters.content_type must be one of {', '.join(CONTENT_TYPES)}")
    inputs = request.inputs
    first = inputs[0].array
    numeric = len(inputs) == 1 and first.dtype != np.object_
    if wanted is None:
        wanted = CSV if numeric and first.ndim in (1, 2) else JSON
    if wanted == JSON:
        if len(inputs) == 1:
            return JSON, json.dumps(_jsonable(first)).encode()
        return JSON, json.dumps({t.name: _jsonable(t.array) for t in inputs}).encode()
    if not numeric:
        raise _refuse(f"{wanted} takes exactly one numeric input; use application/json")
    if wanted == NPY:
        out = io.BytesIO()
        np.save(out, first, allow_pickle=False)
        return NPY, out.getvalue()
    if first.ndim not in (1, 2):
        raise _refuse(f"text/csv takes a rank-1 or rank-2 input, not shape {list(first.shape)}")
    return CSV, _csv(first.reshape(1, -1) if first.ndim == 1 else first)


def _csv(rows: NDArray[Any]) -> bytes:
    """Numeric rows as CSV lines; `str` of a float is its shortest exact form (the codec's
    general writer, with quoting for strings, costs ten times as much per value)."""
    if rows.dtype.kind == "b":
        rows = rows.astype(np.int8)
    return "\n".join([",".join(map(str, row)) for row in rows.tolist()]).encode()


def rows_of(request: Request) -> int:
    """How many rows the request's first input holds (its first dimension)."""
    shape = request.inputs[0].array.shape
    return shape[0] if len(shape) == 2 else 1


def from_container(content_type: str, body: bytes, rows: int) -> NDArray[Any]:
    """The container's answer as one tensor (see the module docstring)."""
    media = content_type.split(";", 1)[0].strip().lower()
    array: NDArray[Any] | None = None
    try:
        if media == NPY:
            return np.asarray(np.load(io.BytesIO(body), allow_pickle=False))
        if media == CSV:
            array = csv_codec.decode(body, np.float64)
        elif media == JSON:
            array = _json_answer(json.loads(body))
    except (DecodeError, ValueError, TypeError):
        array = None
    if array is None:
        return np.array([body], dtype=np.object_)
    if array.dtype != np.object_ and array.ndim == 2 and array.shape[1] == 1:
        array = array.reshape(-1)
    if array.ndim == 2 and array.shape[0] == 1 and array.shape[1] == rows and rows > 1:
        array = array.reshape(-1)  # one line of comma-separated predictions, one per row
    return array


def _json_answer(doc: Any) -> NDArray[Any] | None:
    if isinstance(doc, dict) and isinstance(doc.get("predictions"), list):
        preds = doc["predictions"]
        if preds and all(isinstance(p, dict) and "score" in p for p in preds):
            return np.array([p["score"] for p in preds], dtype=np.float64)
        doc = preds
    if not isinstance(doc, list):
        return None
    array = np.array(doc)
    if array.dtype.kind in "iub":
        return array.astype(np.int64) if array.dtype.kind != "b" else array
    if array.dtype.kind == "f":
        return array.astype(np.float64)
    return None


def _binary(array: NDArray[Any]) -> bytes:
    if array.dtype == np.object_:
        parts = []
        for v in array.reshape(-1):
            raw = v if isinstance(v, bytes) else str(v).encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def encode_response(
    model_name: str,
    model_version: str | None,
    request: Request,
    array: NDArray[Any],
) -> tuple[bytes, int | None]:
    """(body, JSON header length or None) of the V2 response holding `array`."""
    name, binary = (
        request.outputs[0] if request.outputs else (DEFAULT_OUTPUT, request.binary_output)
    )
    output: dict[str, Any] = {
        "name": name,
        "datatype": datatype_of(array),
        "shape": list(array.shape),
    }
    doc: dict[str, Any] = {"model_name": model_name, "outputs": [output]}
    if model_version is not None:
        doc["model_version"] = model_version
    if request.id is not None:
        doc["id"] = request.id
    if not binary:
        output["data"] = _jsonable(array.reshape(-1))
        return json.dumps(doc).encode(), None
    data = _binary(array)
    output["parameters"] = {"binary_data_size": len(data)}
    header = json.dumps(doc).encode()
    return header + data, len(header)
