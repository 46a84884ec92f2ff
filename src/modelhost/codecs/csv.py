"""text/csv: no header, no label column, comma-separated, empty fields are NaN.

Decoding is tuned for the one-row request that dominates real-time traffic. A row of
plain numbers (digits, signs, points, exponents: checked with one `bytes.translate`) is
read as a JSON array by the standard library's C scanner, then stacked by numpy: about
half the CPU of one `split` and one `np.array(fields, dtype)` call (which converts
every field through a Python float on its own; ~12 µs for 69 features). The values are
the same: the scanner turns each number into a Python float (or int) exactly as
`float(field)` does, and the cast to float32 rounds that double once, as numpy does
for the field. What JSON does not read (a leading `+` or `.`, `nan`, empty fields,
spaces, quotes) takes the `split` path. Anything unusual there (empty fields, quotes,
bad numbers) falls back to a per-field parser that also finds the exact row and field
to name in the error.

Encoding writes one row per line joined by "\\n", without a trailing newline unless
asked (SageMaker batch transform, `SAGEMAKER_BATCH=true`, wants one). Floats use
Python's shortest round-trip repr, so a float32 prediction parses back to the same
value. The XGBoost runtime has its own encoders: SageMaker's XGBoost container joins
single-output real-time answers with commas on one line (frameworks/xgboost_output.py).
"""

from __future__ import annotations

from collections.abc import Callable
from json import JSONDecoder
from json.scanner import make_scanner
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from modelhost.errors import DecodeError, EncodeError

MEDIA_TYPE = "text/csv"


BULK_MIN_BYTES = 64 * 1024
"""Bodies this large (batch transform mini-batches) are parsed with pyarrow when it is
installed: about twice as fast as the split path, in C. Anything pyarrow refuses falls
back to the paths below, which also produce the exact error messages."""


# Bytes of a body of plain numbers (what `_decode_numbers` takes).
_NUMBER_BYTES = b"0123456789,.-+eE"
# The C scanner behind `json.loads`, called directly: `loads` adds ~1.5 µs of checks.
# (typeshed types `make_scanner`'s argument as the scanner class; it takes the decoder.)
_scan_json: Callable[[str, int], tuple[Any, int]] = make_scanner(JSONDecoder())  # type: ignore[arg-type]
_NUMBER_DTYPES = frozenset({np.float32, np.float64, np.dtype(np.float32), np.dtype(np.float64)})


def decode(body: bytes, dtype: DTypeLike = np.float32) -> NDArray[Any]:
    """Parse a CSV body into a 2-D float array (rows × features)."""
    if len(body) >= BULK_MIN_BYTES:
        bulk = _decode_bulk(body, dtype)
        if bulk is not None:
            return bulk
    text = body.strip()
    if not text:
        raise DecodeError("Malformed CSV: the body has no rows")
    if not text.translate(None, _NUMBER_BYTES) and b",," not in text:
        numbers = _decode_numbers(text, dtype)
        if numbers is not None:
            return numbers
    if b"\n" not in text and b"\r" not in text:
        fields = text.split(b",")
        try:
            return np.array(fields, dtype=dtype).reshape(1, -1)
        except ValueError:
            return _decode_slow([(1, fields)], dtype)
    rows = [line.split(b",") for line in text.splitlines()]
    width = len(rows[0])
    if any(len(row) != width for row in rows):
        return _decode_slow(_numbered_rows(rows), dtype)
    try:
        return np.array(rows, dtype=dtype)
    except ValueError:
        return _decode_slow(_numbered_rows(rows), dtype)


def _decode_numbers(text: bytes, dtype: DTypeLike) -> NDArray[Any] | None:
    """One row of plain numbers (module docstring), or None: the other paths decide."""
    if dtype not in _NUMBER_DTYPES or b"-0," in text or text.endswith(b"-0"):
        return None  # (JSON reads the integer -0 as 0, not as float's -0.0)
    line = "[" + text.decode("ascii") + "]"
    try:
        values, end = _scan_json(line, 0)
        if end != len(line):
            return None
        array = np.array(values, dtype=np.float64)
    except (ValueError, OverflowError, StopIteration):
        return None
    return array.astype(dtype).reshape(1, -1)


def _decode_bulk(body: bytes, dtype: DTypeLike) -> NDArray[Any] | None:
    np_type = np.dtype(dtype)
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:
        return None
    if np_type not in (np.float32, np.float64):
        return None
    first = body[: body.find(b"\n")] if b"\n" in body else body
    width = first.count(b",") + 1
    # Parsed as float64 then cast, exactly as the split path does (direct float32
    # parsing rounds once, which differs from it in rare last-bit cases).
    arrow_type = pa.float64()
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(body),
            # One thread: an instance is one core's worth of work; more instances or
            # workers (not threads here) use the others.
            read_options=pa_csv.ReadOptions(autogenerate_column_names=True, use_threads=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={f"f{i}": arrow_type for i in range(width)}
            ),
        )
    except (pa.ArrowInvalid, ValueError):
        return None
    if table.num_columns != width or table.num_rows == 0:
        return None
    out = np.empty((table.num_rows, width), dtype=np_type)
    for i, column in enumerate(table.columns):
        out[:, i] = column.to_numpy()  # nulls (empty fields) become NaN
    return out


def _numbered_rows(rows: list[list[bytes]]) -> list[tuple[int, list[bytes]]]:
    # Blank lines are skipped (as np.genfromtxt does); rows keep their line number so
    # errors point at the line the client sent.
    return [(i, row) for i, row in enumerate(rows, 1) if len(row) > 1 or row[0].strip()]


def _decode_slow(rows: list[tuple[int, list[bytes]]], dtype: DTypeLike) -> NDArray[Any]:
    if not rows:
        raise DecodeError("Malformed CSV: the body has no rows")
    first_line, first = rows[0]
    width = len(first)
    values: list[list[float]] = []
    for line_no, fields in rows:
        if len(fields) != width:
            raise DecodeError(
                f"Malformed CSV: row {line_no} has {len(fields)} fields, "
                f"row {first_line} has {width}"
            )
        values.append([_parse_field(field, line_no, col) for col, field in enumerate(fields, 1)])
    return np.array(values, dtype=dtype)


def _parse_field(field: bytes, line_no: int, col: int) -> float:
    raw = field.strip()
    if raw[:1] == b'"' and raw[-1:] == b'"' and len(raw) >= 2:
        raw = raw[1:-1].strip()
    if not raw:
        return float("nan")
    try:
        return float(raw)
    except ValueError:
        shown = raw.decode("utf-8", "replace")
        hint = " (CSV bodies must not have a header row)" if line_no == 1 else ""
        raise DecodeError(
            f"Malformed CSV: row {line_no}, field {col}: could not convert {shown!r} "
            f"to a number{hint}"
        ) from None


def encode(array: Any, *, trailing_newline: bool = False) -> bytes:
    """One row per line; a 2-D row's values are comma-joined on its line."""
    values = np.asarray(array)
    if values.ndim == 0:
        text = _field(values.item())
    elif values.ndim == 1:
        text = "\n".join(map(_field, values.tolist()))
    elif values.ndim == 2:
        text = "\n".join(",".join(map(_field, row)) for row in values.tolist())
    else:
        raise EncodeError(
            f"Cannot write a {values.ndim}-D prediction as text/csv: "
            "use application/json or application/x-npy"
        )
    if trailing_newline and text:
        text += "\n"
    return text.encode()


def _field(value: Any) -> str:
    text = str(value)
    # Quote only when needed (strings from a label encoder, say), per RFC 4180.
    if isinstance(value, str) and any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
