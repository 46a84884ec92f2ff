"""Datasets as Model Monitor reads them: named columns of raw values.

Three formats, as the analyzer's `dataset_format` names them:

- `{"csv": {"header": true|false}}`: CSV; without a header the columns are `_c0`, `_c1`, ...
  (Spark's names, which SageMaker's statistics use);
- `{"json": {"lines": true}}`: JSON Lines, one object per record, keys as column names;
- `{"sagemakerCaptureJson": {}}`: data capture files; each record's `endpointInput` (CSV or
  JSON) gives the columns, the `endpointOutput` can be put in front (`output_columns_position`
  START, the default) or behind (END).

Values stay as read (strings from CSV, JSON scalars); `statistics.py` infers the types.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modelhost.errors import DatasetError

__all__ = ["Dataset", "DatasetError", "parse_format", "positional", "read"]


@dataclass
class Dataset:
    """Columns in order, each a list of raw values (None for a missing value)."""

    columns: dict[str, list[Any]] = field(default_factory=dict)
    rows: int = 0

    def add_row(self, names: list[str], values: list[Any]) -> None:
        for name in names:
            if name not in self.columns:
                self.columns[name] = [None] * self.rows
        for name, value in zip(names, values, strict=False):
            self.columns[name].append(_missing(value))
        self.rows += 1
        for column in self.columns.values():
            if len(column) < self.rows:
                column.append(None)


def _missing(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    return value


def parse_format(env_value: str | dict[str, Any] | None) -> dict[str, Any]:
    """The `dataset_format` environment value (a JSON string) as a dict."""
    if env_value is None:
        return {"csv": {"header": True}}
    if isinstance(env_value, dict):
        return env_value
    try:
        parsed = json.loads(env_value)
    except ValueError as exc:
        raise DatasetError(f"dataset_format is not JSON: {exc}") from exc
    if not isinstance(parsed, dict) or not ({"csv", "json", "sagemakerCaptureJson"} & set(parsed)):
        raise DatasetError(
            'dataset_format must be {"csv": {"header": ...}}, {"json": {"lines": true}} or '
            '{"sagemakerCaptureJson": {}}'
        )
    return parsed


def read(texts: Iterable[str], fmt: dict[str, Any], names: list[str] | None = None) -> Dataset:
    """Read files' texts in `fmt` (see the module docstring). `names` names headerless CSV
    columns by position (a baseline's feature order); beyond it they are `_cN`."""
    data = Dataset()
    if "csv" in fmt:
        header = bool((fmt["csv"] or {}).get("header", True))
        for text in texts:
            _read_csv(data, text, header, names)
    elif "json" in fmt:
        for text in texts:
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    _add_object(data, _json_line(line, number))
    else:
        for text in texts:
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    _add_capture(data, _json_line(line, number), names, fmt)
    return data


def _json_line(line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise DatasetError(f"line {number} is not JSON: {exc}") from exc


def _read_csv(data: Dataset, text: str, header: bool, names: list[str] | None) -> None:
    reader = csv.reader(io.StringIO(text))
    columns: list[str] | None = None
    for row in reader:
        if not row:
            continue
        if header and columns is None:
            columns = [c.strip() for c in row]
            continue
        data.add_row(columns or positional(len(row), names), row)


def positional(count: int, names: list[str] | None) -> list[str]:
    known = names or []
    return [known[i] if i < len(known) else f"_c{i}" for i in range(count)]


def _add_object(data: Dataset, obj: Any) -> None:
    if not isinstance(obj, dict):
        raise DatasetError("a JSON Lines record must be an object of feature values")
    flat = {k: v for k, v in obj.items() if not isinstance(v, dict | list)}
    data.add_row(list(flat), list(flat.values()))


def _side_rows(side: dict[str, Any]) -> list[list[Any] | dict[str, Any]]:
    """The records of one side of a capture: CSV lines, a JSON object or array, or JSON
    Lines (a request may carry several records)."""
    payload = side.get("data", "")
    encoding = side.get("encoding", "CSV")
    if encoding == "BASE64":
        payload = base64.b64decode(payload).decode("utf-8", "replace")
        ctype = str(side.get("observedContentType", "")).lower()
        encoding = "JSON" if "json" in ctype else "CSV"
    if encoding == "JSON":
        try:
            values = [json.loads(payload)]
        except ValueError:
            values = [json.loads(line) for line in payload.splitlines() if line.strip()]
        out: list[list[Any] | dict[str, Any]] = []
        for value in values:
            if isinstance(value, dict):
                out.append(value)
            elif isinstance(value, list) and value and isinstance(value[0], list):
                out.extend(list(v) for v in value)
            else:
                out.append(list(value) if isinstance(value, list) else [value])
        return out
    return [list(r) for r in csv.reader(io.StringIO(payload)) if r]


def _add_capture(data: Dataset, record: Any, names: list[str] | None, fmt: dict[str, Any]) -> None:
    """One capture record: input columns, with the output's in front (START) or behind."""
    capture = record.get("captureData") if isinstance(record, dict) else None
    if not isinstance(capture, dict) or "endpointInput" not in capture:
        raise DatasetError("a capture record needs captureData.endpointInput")
    options = fmt.get("sagemakerCaptureJson") or {}
    inputs = _side_rows(capture["endpointInput"])
    outputs: list[list[Any] | dict[str, Any]] = []
    if options.get("include_output") and "endpointOutput" in capture:
        outputs = _side_rows(capture["endpointOutput"])
        first = outputs[0] if len(outputs) == 1 else None
        if isinstance(first, list) and len(inputs) > 1 and len(first) == len(inputs):
            # One answer per input row on one line (`0.1,0.7,...` or a JSON array).
            outputs = [[value] for value in first]
    for i, row in enumerate(inputs):
        if isinstance(row, dict):
            _add_object(data, row)
            continue
        out = outputs[i] if i < len(outputs) else []
        extra = list(out.values()) if isinstance(out, dict) else out
        end = options.get("output_columns_position") == "END"
        values = [*row, *extra] if end else [*extra, *row]
        data.add_row(positional(len(values), names), values)
