"""Ground truth merged with captured predictions, for model-quality runs (pure).

Ground truth is SageMaker's record format, JSON Lines under GroundTruthS3Input:

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<the InferenceId of the invocation>"}, "eventVersion": "0"}

A capture record is matched by its `inferenceId` (or, without one, its `eventId`). The
prediction is read from `endpointOutput`: for CSV the column `inference_attribute` /
`probability_attribute` names by index (default 0), for JSON by key.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from modelhost.errors import DatasetError


@dataclass
class Pairs:
    """Matched ground truth, predicted labels and (optionally) probabilities."""

    truth: list[Any] = field(default_factory=list)
    predicted: list[Any] = field(default_factory=list)
    probability: list[float] = field(default_factory=list)


def _payload(side: dict[str, Any]) -> tuple[str, str]:
    data, encoding = str(side.get("data", "")), str(side.get("encoding", "CSV"))
    if encoding == "BASE64":
        data = base64.b64decode(data).decode("utf-8", "replace")
        encoding = "JSON" if "json" in str(side.get("observedContentType", "")) else "CSV"
    return data, encoding


def _pick(side: dict[str, Any], attribute: str | None) -> Any:
    data, encoding = _payload(side)
    if encoding == "JSON":
        value = json.loads(data)
        if isinstance(value, dict):
            return value.get(attribute or "", next(iter(value.values()), None))
        if isinstance(value, list):
            return value[int(attribute or 0)] if value else None
        return value
    rows = [r for r in csv.reader(io.StringIO(data)) if r]
    if not rows:
        return None
    index = int(attribute) if attribute and attribute.isdigit() else 0
    return rows[0][index].strip() if index < len(rows[0]) else None


def merge(capture_lines: list[str], truth_lines: list[str], env: dict[str, str]) -> Pairs:
    """Pairs of the captures that have ground truth (see the module docstring)."""
    truth: dict[str, Any] = {}
    for number, line in enumerate(truth_lines, start=1):
        try:
            record = json.loads(line)
            key = record["eventMetadata"]["eventId"]
            truth[str(key)] = _pick(record["groundTruthData"], None)
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"ground truth line {number} is not a record: {exc}") from None
    pairs = Pairs()
    inference = env.get("inference_attribute")
    probability = env.get("probability_attribute")
    threshold = float(env.get("probability_threshold_attribute") or 0.5)
    for line in capture_lines:
        record = json.loads(line)
        meta = record.get("eventMetadata") or {}
        key = str(meta.get("inferenceId") or meta.get("eventId") or "")
        output = (record.get("captureData") or {}).get("endpointOutput")
        if key not in truth or output is None:
            continue
        if probability is not None:
            prob = float(_pick(output, probability))
            pairs.probability.append(prob)
            pairs.predicted.append(1 if prob > threshold else 0)
        else:
            pairs.predicted.append(_pick(output, inference))
        pairs.truth.append(truth[key])
    if not pairs.truth:
        raise DatasetError("no captured prediction in the window has ground truth")
    return pairs
