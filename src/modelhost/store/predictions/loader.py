"""Loading a transform job's output into a prediction store, keyed by an input column.

A transform job writes `<output>/<relative input path>.out` for every input object, one
output line per input record (SplitType Line, AssembleWith Line). The loader walks the
inputs, reads each input and its `.out` side by side, takes the key from the chosen input
column or field, and bulk-loads key → output line as a new run of the store.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from modelhost.errors import ValidationException
from modelhost.settings import Settings
from modelhost.store.predictions.backends import open_prediction_store
from modelhost.store.predictions.base import (
    PredictionStore,
    RunInfo,
    ValueFormat,
    check_key,
    check_run_id,
    check_store_name,
)
from modelhost.store.predictions.locations import Location, ObjectRef

CSV = "text/csv"
JSON_LINES = ("application/jsonlines", "application/x-jsonlines", "application/json")


def load_transform_output(
    store: str,
    key_column: str | int,
    input_location: str,
    output_location: str,
    content_type: str = CSV,
    settings: Settings | None = None,
    *,
    accept: str | None = None,
    run_id: str | None = None,
    has_header: bool | None = None,
    prediction_store: PredictionStore | None = None,
) -> RunInfo:
    """Load a transform job's predictions into `store` as a new run; returns the run.

    - `key_column`: for CSV input a 0-based column index (an int or a string of digits) or
      a header name; for JSON Lines input a top-level field name.
    - `input_location` / `output_location`: the job's input (a file or a prefix) and
      output prefix: a local path, `file://...` or `s3://bucket/prefix`.
    - `content_type`: the input's (`text/csv` or `application/jsonlines`); `accept`: the
      output's, by default the same. CSV outputs are stored as text, JSON Lines outputs as
      JSON values.
    - `run_id`: by default derived from the inputs' and outputs' fingerprints, so loading the
      same output again is a no-op (`RunInfo.loaded` is False).
    - `has_header`: whether each CSV input starts with a header line (which has no output
      line); by default true exactly when `key_column` is a name.
    - `prediction_store`: the backend to load into; by default the one `settings` names.

    Raises `ValidationException` for bad arguments or when an output does not match its
    input line for line (nothing is loaded then), `ArtifactError` for unreadable locations.
    """
    settings = settings or Settings()
    check_store_name(store)
    in_type = _media_type(content_type, "ContentType")
    out_type = _media_type(accept or content_type, "Accept")
    column = _column(key_column, in_type)
    header = isinstance(column, str) if has_header is None else has_header
    if in_type == CSV and isinstance(column, str) and not header:
        raise ValidationException(f"Key column '{column}' is a name, so the CSV needs a header.")
    inputs = Location(input_location, "input", settings.s3_endpoint_url)
    outputs = Location(output_location, "output", settings.s3_endpoint_url)
    pairs = _pair_objects(inputs, outputs)
    if run_id is None:
        run_id = _fingerprint_run_id(pairs, store, str(column), in_type, out_type, str(header))
    check_run_id(run_id)
    value_format = ValueFormat.TEXT if out_type == CSV else ValueFormat.JSON
    backend = prediction_store or open_prediction_store(settings)
    try:
        with tempfile.TemporaryDirectory(prefix="modelhost-load-") as scratch:
            items = _items(
                inputs, outputs, pairs, Path(scratch), in_type, column, header, value_format
            )
            return backend.load(store, run_id, items, value_format)
    finally:
        if prediction_store is None:
            backend.close()


def _fingerprint_run_id(pairs: list[tuple[ObjectRef, ObjectRef]], *parts: str) -> str:
    """A run id from the arguments and the objects' fingerprints: loading the same output
    again finds the same id (and is a no-op)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    for given, made in pairs:
        digest.update(f"{given.rel}\0{given.fingerprint}\0{made.fingerprint}\0".encode())
    return "run-" + digest.hexdigest()[:20]


def _media_type(value: str, field: str) -> str:
    media = value.split(";", 1)[0].strip().lower()
    if media == CSV:
        return CSV
    if media in JSON_LINES:
        return JSON_LINES[0]
    raise ValidationException(
        f"{field} '{value}' is not supported for loading predictions; use text/csv or "
        "application/jsonlines."
    )


def _column(key_column: str | int, in_type: str) -> str | int:
    if isinstance(key_column, int):
        if in_type != CSV or key_column < 0:
            raise ValidationException(
                f"Key column {key_column}: an index needs CSV input and must be >= 0."
            )
        return key_column
    if not key_column:
        raise ValidationException("Key column must not be empty.")
    if in_type == CSV and key_column.isdigit():
        return int(key_column)
    return key_column


def _pair_objects(inputs: Location, outputs: Location) -> list[tuple[ObjectRef, ObjectRef]]:
    """(input, output) for every input object; `.out` objects among the inputs are outputs."""
    pairs = []
    for given in inputs.list_objects():
        if given.rel.endswith(".out"):
            continue
        made = outputs.describe(given.rel + ".out")
        if made is None:
            raise ValidationException(
                f"No output for input {inputs.where(given.rel)}: expected "
                f"{outputs.where(given.rel + '.out')}."
            )
        pairs.append((given, made))
    if not pairs:
        raise ValidationException(f"No input objects at {inputs.url}.")
    return pairs


def _items(
    inputs: Location,
    outputs: Location,
    pairs: list[tuple[ObjectRef, ObjectRef]],
    scratch: Path,
    in_type: str,
    column: str | int,
    header: bool,
    value_format: ValueFormat,
) -> Iterator[tuple[str, str]]:
    for given, made in pairs:
        where = inputs.where(given.rel)
        with ExitStack() as stack:
            in_path = stack.enter_context(inputs.fetch(given, scratch / "in"))
            out_path = stack.enter_context(outputs.fetch(made, scratch / "out"))
            keys = stack.enter_context(_open_text(in_path))
            values = stack.enter_context(_open_text(out_path))
            key_iter = (
                _csv_keys(keys, column, header, where)
                if in_type == CSV
                else _json_keys(keys, str(column), where)
            )
            record = 0
            for record, key in enumerate(key_iter, 1):
                line = values.readline()
                if not line:
                    raise _mismatch(where, outputs.where(made.rel), record - 1, "fewer")
                value = line.rstrip("\r\n")
                if value_format is ValueFormat.JSON:
                    _check_json(value, outputs.where(made.rel), record)
                yield key, value
            if values.readline():
                raise _mismatch(where, outputs.where(made.rel), record, "more")


def _mismatch(where: str, out: str, records: int, how: str) -> ValidationException:
    return ValidationException(
        f"{out} has {how} lines than {where} has records ({records}); an output must hold "
        "one line per input record (SplitType Line, AssembleWith Line)."
    )


def _open_text(path: Path) -> IO[str]:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return io.TextIOWrapper(gzip.GzipFile(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _csv_keys(text: IO[str], column: str | int, header: bool, where: str) -> Iterator[str]:
    # Blank lines are not records (a transform job sends none to the model).
    rows = (row for row in csv.reader(text) if row and any(cell.strip() for cell in row))
    index = column
    if header:
        names = next(rows, None)
        if names is None:
            return
        if isinstance(column, str):
            cleaned = [n.strip() for n in names]
            if column not in cleaned:
                raise ValidationException(
                    f"Key column '{column}' is not in the header of {where} "
                    f"(columns: {', '.join(cleaned[:20])})."
                )
            index = cleaned.index(column)
    assert isinstance(index, int)
    for record, row in enumerate(rows, 1):
        if index >= len(row):
            raise ValidationException(
                f"Record {record} of {where} has {len(row)} columns; key column {index} is missing."
            )
        yield check_key(row[index].strip())


def _json_keys(text: IO[str], field: str, where: str) -> Iterator[str]:
    record = 0
    for line in text:
        if not line.strip():
            continue
        record += 1
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise ValidationException(f"Record {record} of {where} is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or field not in doc:
            raise ValidationException(f"Record {record} of {where} has no field '{field}'.")
        key = doc[field]
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise ValidationException(
                f"Record {record} of {where}: key field '{field}' must be a string or an "
                f"integer, not {json.dumps(key)[:40]}."
            )
        yield check_key(str(key))


def _check_json(value: str, where: str, record: int) -> None:
    try:
        json.loads(value)
    except ValueError as exc:
        raise ValidationException(f"Line {record} of {where} is not JSON: {exc}") from exc
