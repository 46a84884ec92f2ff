"""application/x-recordio-protobuf: SageMaker's RecordIO-framed protobuf `Record`s.

The format of SageMaker's built-in algorithms (the SDK's `RecordSerializer`,
`write_numpy_to_dense_tensor`, Autopilot's inference pipelines). Two layers:

- RecordIO framing (MXNet's): per record a little-endian uint32 magic `0xCED7230A`, a
  uint32 whose low 29 bits are the payload length and top 3 bits a continuation flag
  (0 whole, 1 first, 2 middle, 3 last part), the payload, and zero padding to 4 bytes.
- The payload, protobuf `aialgs.data.Record`: `map<string, Value> features = 1`,
  `map<string, Value> label = 2`, three optional strings (3-5). `Value` is a oneof of
  `Float32Tensor float32_tensor = 2`, `Float64Tensor float64_tensor = 3`,
  `Int32Tensor int32_tensor = 7`, `Bytes bytes = 9`; a tensor has `values = 1`,
  `keys = 2` (sparse positions) and `shape = 3`, all packed.

Written by hand, the few dozen lines of wire format this needs, rather than taking a
dependency on protobuf plus generated code (the `sagemaker` SDK that ships `record_pb2`
is far too large for an instance to import). Decoding reads the `values` feature of
each record as one row (dense, or sparse with `keys` and `shape`, absent entries NaN);
encoding writes label maps of float32 tensors, as SageMaker's XGBoost container answers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.errors import DecodeError

MEDIA_TYPE = "application/x-recordio-protobuf"
MAGIC = 0xCED7230A
_LENGTH_MASK = (1 << 29) - 1
_FEATURE = "values"  # the feature name SageMaker's writers and readers use
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


# --- RecordIO framing ---------------------------------------------------------------------


def split_records(body: bytes) -> list[bytes]:
    """The payloads of a RecordIO stream (multi-part records joined)."""
    records: list[bytes] = []
    parts: list[bytes] = []
    pos, size = 0, len(body)
    while pos < size:
        if size - pos < 8:
            raise DecodeError(f"Malformed RecordIO: {size - pos} stray bytes at offset {pos}")
        magic, word = struct.unpack_from("<II", body, pos)
        if magic != MAGIC:
            raise DecodeError(f"Malformed RecordIO: bad magic 0x{magic:08x} at offset {pos}")
        length, flag = word & _LENGTH_MASK, word >> 29
        start = pos + 8
        if start + length > size:
            raise DecodeError(
                f"Malformed RecordIO: record at offset {pos} claims {length} bytes, "
                f"{size - start} remain"
            )
        parts.append(body[start : start + length])
        pos = start + ((length + 3) & ~3)
        if flag in (0, 3):  # whole record, or the last part of one
            records.append(b"".join(parts))
            parts = []
    if parts:
        raise DecodeError("Malformed RecordIO: the body ends inside a multi-part record")
    return records


def frame(payloads: Iterable[bytes]) -> bytes:
    """RecordIO-frame each payload as one whole record."""
    out = bytearray()
    for payload in payloads:
        out += struct.pack("<II", MAGIC, len(payload))
        out += payload
        out += b"\0" * (-len(payload) % 4)
    return bytes(out)


# --- protobuf wire format (the subset Record needs) ----------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("Malformed protobuf Record: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("Malformed protobuf Record: varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): value is an int, or bytes for LEN/fixed types."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield number, wire, value
            continue
        if wire == _LEN:
            length, pos = _varint(buf, pos)
        elif wire == _FIXED64:
            length = 8
        elif wire == _FIXED32:
            length = 4
        else:
            raise DecodeError(f"Malformed protobuf Record: unsupported wire type {wire}")
        if pos + length > len(buf):
            raise DecodeError("Malformed protobuf Record: field runs past the end")
        yield number, wire, buf[pos : pos + length]
        pos += length


def _packed_varints(data: bytes) -> list[int]:
    values, pos = [], 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        values.append(value)
    return values


def _tensor(buf: bytes) -> tuple[NDArray[Any], list[int], list[int]]:
    """(values, keys, shape) of a `Value` holding any numeric tensor."""
    for number, wire, payload in _fields(buf):
        if wire != _LEN:
            continue
        if number in (2, 3, 7):
            return _tensor_fields(payload, number)
        if number == 9:
            raise DecodeError("Unsupported recordio-protobuf value: Bytes; send numeric tensors")
    raise DecodeError("Malformed protobuf Record: a feature holds no tensor")


def _tensor_fields(buf: bytes, kind: int) -> tuple[NDArray[Any], list[int], list[int]]:
    fmt = {2: "<f4", 3: "<f8"}.get(kind)
    chunks: list[NDArray[Any]] = []
    ints: list[int] = []
    keys: list[int] = []
    shape: list[int] = []
    for number, wire, payload in _fields(buf):
        if number == 1:
            if fmt is not None:  # packed (LEN) or one unpacked fixed-width value
                chunks.append(np.frombuffer(payload, dtype=fmt))
            elif wire == _LEN:
                ints.extend(_packed_varints(payload))
            else:
                ints.append(payload)
        elif number in (2, 3):
            target = keys if number == 2 else shape
            if wire == _LEN:
                target.extend(_packed_varints(payload))
            else:
                target.append(payload)
    if fmt is None:
        # int32 is a varint of the two's complement; negative ones arrive as 64-bit.
        signed = [v - (1 << 64) if v >= 1 << 63 else v for v in ints]
        return np.asarray(signed, dtype=np.float64), keys, shape
    values = np.concatenate(chunks) if chunks else np.empty(0, dtype=fmt)
    return values, keys, shape


def _map(record: bytes, number: int) -> dict[str, bytes]:
    """A `map<string, Value>` field of a Record: name → serialized Value."""
    entries: dict[str, bytes] = {}
    for n, wire, entry in _fields(record):
        if n != number or wire != _LEN:
            continue
        key, value = "", b""
        for field, w, payload in _fields(entry):
            if field == 1 and w == _LEN:
                key = payload.decode("utf-8", "replace")
            elif field == 2 and w == _LEN:
                value = payload
        entries[key] = value
    return entries


def decode(body: bytes, dtype: DTypeLike = np.float32) -> NDArray[Any]:
    """One row per record from its `values` feature; sparse rows have NaN where absent."""
    rows: list[NDArray[Any]] = []
    sparse = False
    for i, record in enumerate(split_records(body), 1):
        features = _map(record, 1)
        value = features.get(_FEATURE)
        if value is None:
            if len(features) != 1:
                names = ", ".join(sorted(features)) or "none"
                raise DecodeError(
                    f"Malformed recordio-protobuf: record {i} has no 'values' feature "
                    f"(features: {names})"
                )
            value = next(iter(features.values()))
        values, keys, shape = _tensor(value)
        if keys:
            sparse = True
            if len(keys) != len(values):
                raise DecodeError(
                    f"Malformed recordio-protobuf: record {i} has {len(keys)} keys "
                    f"and {len(values)} values"
                )
            width = int(np.prod(shape)) if shape else max(keys) + 1
            if max(keys) >= width:
                raise DecodeError(
                    f"Malformed recordio-protobuf: record {i} has key {max(keys)} "
                    f"outside its shape {shape}"
                )
            row = np.full(width, np.nan, dtype=np.float64)
            row[np.asarray(keys, dtype=np.int64)] = values
            values = row
        rows.append(np.asarray(values, dtype=dtype).ravel())
    if not rows:
        raise DecodeError("Malformed recordio-protobuf: the body holds no records")
    width = max(len(r) for r in rows)
    if any(len(r) != width for r in rows):
        if not sparse:
            lengths = sorted({len(r) for r in rows})
            raise DecodeError(f"Malformed recordio-protobuf: rows have {lengths} values")
        rows = [np.pad(r, (0, width - len(r)), constant_values=np.nan) for r in rows]
    return np.vstack(rows)


# --- encoding -----------------------------------------------------------------------------


def _tag(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _tag(number, _LEN) + _encode_varint(len(payload)) + payload


def _float32_value(values: Sequence[float]) -> bytes:
    packed = np.asarray(values, dtype="<f4").tobytes()
    return _len_field(2, _len_field(1, packed))  # Value.float32_tensor.values


def encode_record(
    label: Mapping[str, Sequence[float]], features: Mapping[str, Sequence[float]] | None = None
) -> bytes:
    """One `Record` payload: label (and feature) maps of float32 tensors."""
    out = bytearray()
    for number, mapping in ((1, features or {}), (2, label)):
        for key, values in mapping.items():
            entry = _len_field(1, key.encode()) + _len_field(2, _float32_value(values))
            out += _len_field(number, entry)
    return bytes(out)


def encode_rows(array: Any) -> bytes:
    """A 2-D array as records with a dense `values` feature (the SDK's dense writer)."""
    rows = np.asarray(array, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    return frame(encode_record({}, {_FEATURE: row}) for row in rows)


def read_labels(body: bytes) -> list[dict[str, list[float]]]:
    """Each record's label map as plain lists (for clients and tests)."""
    return [
        {key: _tensor(value)[0].tolist() for key, value in _map(record, 2).items()}
        for record in split_records(body)
    ]
