"""DataProcessing: InputFilter, JoinSource Input and OutputFilter, per mini-batch.

Pure functions. CSV rows are treated as JSON arrays of their field texts (fields are not
re-formatted, so an id column comes back byte for byte); JSON and JSON Lines records
are parsed objects. The model's output for a mini-batch is cut into one output per input
record: lines, or the `predictions` array of a JSON answer. The join puts the output
after the input columns (CSV) or under `SageMakerOutput` (JSON; a non-object input is
wrapped as `{"SageMakerInput": ..., "SageMakerOutput": ...}`), as SageMaker does.

Only jobs that set DataProcessing pay for this per-record work; the others pass bytes
through untouched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelhost.jobs import jsonpath

CSV = "text/csv"
JSON_TYPES = ("application/json", "application/jsonlines", "application/x-jsonlines")
SUPPORTED = (CSV, *JSON_TYPES)


class RecordError(ValueError):
    """One record could not be filtered or joined; `record` is 0-based in its batch."""

    def __init__(self, record: int, message: str) -> None:
        super().__init__(message)
        self.record = record


def media(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class DataProcessing:
    """The parsed DataProcessing of a job, with the input and output formats."""

    input_filter: tuple[jsonpath.Step, ...]
    output_filter: tuple[jsonpath.Step, ...]
    join: bool
    csv_input: bool
    csv_output: bool

    @property
    def identity(self) -> bool:
        return not (self.input_filter or self.output_filter or self.join)


def build(
    spec: dict[str, Any] | None, content_type: str | None, accept: str | None
) -> DataProcessing:
    """Parse a job's DataProcessing member; raises ValueError with the member's name."""
    spec = spec or {}
    in_path = spec.get("InputFilter") or "$"
    out_path = spec.get("OutputFilter") or "$"
    join = spec.get("JoinSource", "None") == "Input"
    result = DataProcessing(
        input_filter=_parse("InputFilter", in_path),
        output_filter=_parse("OutputFilter", out_path),
        join=join,
        csv_input=media(content_type) == CSV,
        csv_output=media(accept or content_type) == CSV,
    )
    if not result.identity:
        for member, value in (("ContentType", content_type), ("Accept", accept)):
            if value is not None and media(value) not in SUPPORTED:
                raise ValueError(
                    f"DataProcessing needs TransformInput.ContentType and TransformOutput."
                    f"Accept in {', '.join(SUPPORTED)}; {member} is '{value}'"
                )
    return result


def _parse(member: str, path: str) -> tuple[jsonpath.Step, ...]:
    try:
        return jsonpath.parse(path)
    except jsonpath.JSONPathError as exc:
        raise ValueError(f"DataProcessing.{member}: {exc}") from exc


def split_records(body: bytes, by_line: bool) -> list[bytes]:
    if not by_line:
        return [body]
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _load(record: bytes, csv_format: bool) -> Any:
    if csv_format:
        return record.decode("utf-8").split(",")
    return json.loads(record)


def _dump(value: Any, csv_format: bool) -> bytes:
    if csv_format:
        items = value if isinstance(value, list) else [value]
        return ",".join(_csv_field(v) for v in items).encode()
    return json.dumps(value, separators=(",", ":")).encode()


def _csv_field(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def filter_input(dp: DataProcessing, records: list[bytes]) -> bytes:
    """The request body for these input records after InputFilter (newline-joined)."""
    if not dp.input_filter:
        return b"\n".join(records) + b"\n"
    out: list[bytes] = []
    for i, record in enumerate(records):
        try:
            value = jsonpath.evaluate(dp.input_filter, _load(record, dp.csv_input))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordError(i, f"InputFilter: {exc}") from exc
        out.append(_dump(value, dp.csv_input))
    return b"\n".join(out) + b"\n"


def output_records(body: bytes, count: int) -> list[Any]:
    """Cut a model answer into `count` outputs: a JSON `predictions` array or lines."""
    text = body.strip()
    if text.startswith(b"{"):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("predictions"), list):
            preds = doc["predictions"]
            if len(preds) == count:
                return list(preds)
    lines = split_records(body, True) if count != 1 else [text]
    if len(lines) != count:
        raise RecordError(
            0, f"the model answered {len(lines)} output records for {count} input records"
        )
    return lines


def join_output(dp: DataProcessing, records: list[bytes], answer: bytes) -> bytes:
    """JoinSource and OutputFilter over one mini-batch; newline-terminated output lines."""
    outputs = output_records(answer, len(records))
    if not dp.join and not dp.output_filter:
        return b"".join(_as_line(o) for o in outputs)
    lines: list[bytes] = []
    for i, (record, output) in enumerate(zip(records, outputs, strict=True)):
        try:
            value = _joined(dp, record, output) if dp.join else _output_value(dp, output)
            if dp.output_filter:
                value = jsonpath.evaluate(dp.output_filter, value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordError(i, f"OutputFilter/JoinSource: {exc}") from exc
        lines.append(_dump(value, dp.csv_output if not dp.join else dp.csv_input) + b"\n")
    return b"".join(lines)


def _as_line(output: Any) -> bytes:
    if isinstance(output, bytes):
        return output + b"\n"
    return json.dumps(output, separators=(",", ":")).encode() + b"\n"


def _output_value(dp: DataProcessing, output: Any) -> Any:
    if not isinstance(output, bytes):
        return output
    if dp.csv_output:
        return output.decode("utf-8").split(",")
    try:
        return json.loads(output)
    except ValueError:
        return output.decode("utf-8")


def _joined(dp: DataProcessing, record: bytes, output: Any) -> Any:
    source = _load(record, dp.csv_input)
    if dp.csv_input:
        if isinstance(output, bytes):
            extra: list[Any] = output.decode("utf-8").split(",")
        elif isinstance(output, dict):
            extra = list(output.values())
        else:
            extra = output if isinstance(output, list) else [output]
        return [*source, *extra]
    value = _output_value(dp, output) if isinstance(output, bytes) else output
    if isinstance(source, dict):
        return {**source, "SageMakerOutput": value}
    return {"SageMakerInput": source, "SageMakerOutput": value}
