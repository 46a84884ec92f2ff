"""Payloads of a load test: a CSV or JSON Lines file, one request per row.

As the seeds' locustfile does, every request sends one row picked at random. A folder (an
Inference Recommender SamplePayloadUrl, unpacked) gives one request per file. With a target
model column (`--target-model-column State`) the row's value in that column names the model
of a multi-model endpoint (`CA` → `TargetModel="CA.tar.gz"`, by the template) and the column
is left out of the body. A CSV file has a header when its first row holds a field that is
not a number; a column is named by its header or by its 0-based index.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhost.errors import ValidationException

JSON_SUFFIXES = (".jsonl", ".jsonlines", ".ndjson", ".json")


@dataclass(frozen=True)
class Payload:
    """One request body, its content type and (multi-model endpoints) its TargetModel."""

    body: bytes
    content_type: str
    target_model: str | None = None


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column_index(header: list[str] | None, column: str, path: Path) -> int:
    if header is not None and column in header:
        return header.index(column)
    if column.isdigit():
        return int(column)
    known = f"; its columns are {', '.join(header)}" if header else " (it has no header row)"
    raise ValidationException(f"--target-model-column {column!r} is not a column of {path}{known}.")


def _target(value: Any, template: str) -> str:
    text = str(value).strip()
    if not text:
        raise ValidationException("a row has an empty target model column.")
    return text if text.endswith(".tar.gz") else template.format(text)


def _csv(path: Path, column: str | None, template: str, content_type: str) -> list[Payload]:
    rows = [r for r in csv.reader(io.StringIO(path.read_text())) if r]
    if not rows:
        raise ValidationException(f"payload file {path} has no rows.")
    header = rows[0] if not all(_number(v) for v in rows[0]) else None
    if header is not None:
        rows = rows[1:]
    index = _column_index(header, column, path) if column is not None else None
    out: list[Payload] = []
    for row in rows:
        if index is None:
            out.append(Payload(",".join(row).encode(), content_type))
            continue
        if index >= len(row):
            raise ValidationException(f"a row of {path} has no column {index}.")
        rest = row[:index] + row[index + 1 :]
        out.append(Payload(",".join(rest).encode(), content_type, _target(row[index], template)))
    return out


def _jsonl(path: Path, column: str | None, template: str, content_type: str) -> list[Payload]:
    out: list[Payload] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationException(f"{path} line {number} is not JSON: {exc}") from exc
        if column is None:
            out.append(Payload(line.encode(), content_type))
            continue
        if isinstance(record, dict) and column in record:
            value = record.pop(column)
        elif isinstance(record, list) and column.isdigit() and int(column) < len(record):
            value = record.pop(int(column))
        else:
            raise ValidationException(f"{path} line {number} has no member {column!r}.")
        body = json.dumps(record, separators=(",", ":")).encode()
        out.append(Payload(body, content_type, _target(value, template)))
    if not out:
        raise ValidationException(f"payload file {path} has no rows.")
    return out


def _files(path: Path, content_type: str) -> list[Payload]:
    """A folder of payload files (an unpacked SamplePayloadUrl): each file is one request."""
    out = [
        Payload(f.read_bytes(), content_type)
        for f in sorted(path.rglob("*"))
        if f.is_file() and not f.name.startswith(".")
    ]
    if not out:
        raise ValidationException(f"payload folder {path} holds no files.")
    return out


def load_payloads(
    path: str | Path,
    *,
    content_type: str | None = None,
    target_model_column: str | None = None,
    target_model_template: str = "{}.tar.gz",
) -> list[Payload]:
    """Every row of the file as a request (JSON Lines by suffix, else CSV), or every file of
    a folder as one request."""
    path = Path(path)
    if path.is_dir() and target_model_column is None:
        return _files(path, content_type or "text/csv")
    if not path.is_file():
        raise ValidationException(f"payload file {path} does not exist.")
    if "{}" not in target_model_template:
        raise ValidationException("--target-model-template must contain {} (the column value).")
    if path.suffix.lower() in JSON_SUFFIXES:
        return _jsonl(
            path, target_model_column, target_model_template, content_type or "application/json"
        )
    return _csv(path, target_model_column, target_model_template, content_type or "text/csv")
