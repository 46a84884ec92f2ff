"""A batch transform job's data capture, read as capture records (pure but for `read`).

A transform job with DataCaptureConfig writes two manifests per run (jobs/batch_capture.py):
`{destination}/input/yyyy/mm/dd/hh/{MM}-{SS}-{mmm}-{id}.json` lists its input objects,
the same name under `output/` their outputs. A monitoring run over a BatchTransformInput
reads the input manifests of its window, each input object's records in the
BatchTransformInput's DatasetFormat (CSV with or without a header, JSON Lines or one JSON
document), pairs them line by line with the output object when the counts agree, and
turns each into a record of the endpoint capture format (`captureData.endpointInput` /
`endpointOutput`, `eventMetadata.inferenceTime` the job's start, `inferenceId` the output's
`SageMakerInferenceId` when the job generated ids), so the analyzer treats both alike.
"""

from __future__ import annotations

import calendar
import csv
import io
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from modelhost.monitor.dataset import DatasetError

ID_KEY = "SageMakerInferenceId"
TIME_KEY = "SageMakerInferenceTime"
_WHEN = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/(?:(\d{2})-(\d{2})-(\d{3})-)?[^/]*$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def manifest_time(url: str) -> float | None:
    """When the job of a manifest started, from its path (None outside the layout)."""
    found = _WHEN.search(url)
    if found is None:
        return None
    year, month, day, hour, minute, second, millis = (int(g or 0) for g in found.groups())
    try:
        whole = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    return whole + millis / 1000.0


def output_manifest(url: str) -> str:
    """The output manifest beside an input manifest (`.../input/...` → `.../output/...`)."""
    head, sep, tail = url.rpartition("/input/")
    return f"{head}/output/{tail}" if sep else url


def objects(text: str, source: str) -> list[str]:
    """The object URLs of a ManifestFile document."""
    try:
        doc = json.loads(text)
        prefix = doc[0]["prefix"]
        return [prefix + str(rel) for rel in doc[1:]]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise DatasetError(f"{source} is not a batch capture manifest: {exc}") from exc


def rows(text: str, fmt: dict[str, Any]) -> list[str]:
    """One input object's records as text, in `fmt` (the analyzer's dataset_format)."""
    if "csv" in fmt:
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[1:] if (fmt["csv"] or {}).get("header") else lines
    if (fmt.get("json") or {}).get("lines"):
        return [line for line in text.splitlines() if line.strip()]
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise DatasetError(f"a batch input is not JSON: {exc}") from exc
    return [json.dumps(item) for item in doc] if isinstance(doc, list) else [json.dumps(doc)]


def _split_output(line: str) -> tuple[str, str | None]:
    """An output record without the inference id and time GenerateInferenceId appended."""
    try:
        doc = json.loads(line)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and ID_KEY in doc:
        inference_id = str(doc.pop(ID_KEY))
        doc.pop(TIME_KEY, None)
        return json.dumps(doc), inference_id
    fields = next(csv.reader(io.StringIO(line)), [])
    if len(fields) >= 3 and _ISO.match(fields[-1]):
        try:
            uuid.UUID(fields[-2])
        except ValueError:
            return line, None
        return line.rsplit(",", 2)[0], fields[-2]
    return line, None


def records(
    inputs: list[str], outputs: list[str] | None, fmt: dict[str, Any], when_s: float
) -> list[str]:
    """Capture records (JSON lines) of one object's input rows and output lines."""
    csv_input = "csv" in fmt
    side = {
        "observedContentType": "text/csv" if csv_input else "application/json",
        "encoding": "CSV" if csv_input else "JSON",
    }
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when_s))
    paired = outputs if outputs is not None and len(outputs) == len(inputs) else None
    out = []
    for i, row in enumerate(inputs):
        capture: dict[str, Any] = {"endpointInput": {**side, "mode": "INPUT", "data": row}}
        meta = {"eventId": str(uuid.uuid4()), "inferenceTime": when}
        if paired is not None:
            answer, inference_id = _split_output(paired[i])
            is_json = answer.lstrip().startswith(("{", "["))
            capture["endpointOutput"] = {
                "observedContentType": "application/json" if is_json else "text/csv",
                "mode": "OUTPUT",
                "data": answer,
                "encoding": "JSON" if is_json else "CSV",
            }
            if inference_id:
                meta["inferenceId"] = inference_id
        out.append(json.dumps({"captureData": capture, "eventMetadata": meta, "eventVersion": "0"}))
    return out


def capture_lines(
    manifests: list[str], read: Callable[[str], str | None], fmt: dict[str, Any]
) -> list[str]:
    """The capture records of the input manifests `manifests` (URLs); `read(url)` gives a
    file's text, None when it does not exist (an output not written)."""
    out: list[str] = []
    for url in manifests:
        text = read(url)
        when_s = manifest_time(url)
        if text is None or when_s is None:
            continue
        outputs_text = read(output_manifest(url))
        outputs = objects(outputs_text, url) if outputs_text is not None else []
        for i, obj in enumerate(objects(text, url)):
            body = read(obj)
            if body is None:
                raise DatasetError(f"{url} names {obj}, which cannot be read")
            answer = read(outputs[i]) if i < len(outputs) else None
            lines = [x for x in answer.splitlines() if x.strip()] if answer is not None else None
            out += records(rows(body, fmt), lines, fmt, when_s)
    return out
