"""Replay before deploy: captured production traffic against a candidate model (pure part).

`parse_captures` turns data capture files (SageMaker's JSON Lines, see telemetry/capture.py)
into `Captured` inputs with the outputs production answered; a record that does not parse
(bad JSON, no `endpointInput`, undecodable base64) becomes a `BadRecord`, reported and
skipped. `compare` builds the replay report from the candidate's answers (`Answer`), in the
shadow report's shape where it fits (telemetry/shadow_report.py):

- `ExactAgreement` (same bytes) and `NumericAgreement` (every number within `Tolerance`,
  numbers parsed as the shadow report parses them), `NumericDifference` (max/mean absolute
  difference over the compared numbers);
- `Candidate`: latency p50/p99 in µs (as the replayer measured each invocation), error
  rate and the first errors;
- `OutputDrift`: KS statistic and PSI (monitor/drift.py) of the candidate's outputs against
  the captured outputs, and against a baseline of outputs when one is given.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from modelhost.telemetry.shadow_report import _percentile, parse_numbers

MAX_ERRORS_LISTED = 10


@dataclass(frozen=True)
class Captured:
    """One captured invocation: what to send again and what production answered."""

    event_id: str
    content_type: str
    body: bytes
    output: bytes | None  # None when the capture holds no output


@dataclass(frozen=True)
class BadRecord:
    """A capture line that could not be replayed, and why."""

    source: str
    line: int
    reason: str


@dataclass(frozen=True)
class Answer:
    """The candidate's answer to one captured input (`status` None: no answer at all)."""

    status: int | None
    latency_us: float
    body: bytes
    error: str | None = None


def _decode(side: dict[str, Any]) -> bytes:
    data = side.get("data")
    if not isinstance(data, str):
        raise ValueError("data is not a string")
    if side.get("encoding") == "BASE64":
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"data is not valid base64: {exc}") from exc
    return data.encode("utf-8")


def parse_record(text: str, number: int) -> Captured:
    """One capture line; ValueError says what is wrong with it."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    capture = obj.get("captureData") if isinstance(obj, dict) else None
    side = capture.get("endpointInput") if isinstance(capture, dict) else None
    if not isinstance(side, dict):
        raise ValueError("no captureData.endpointInput")
    out_side = capture.get("endpointOutput") if isinstance(capture, dict) else None
    meta = obj.get("eventMetadata") or {}
    return Captured(
        event_id=str(meta.get("eventId") or f"line-{number}"),
        content_type=str(side.get("observedContentType") or "application/octet-stream"),
        body=_decode(side),
        output=_decode(out_side) if isinstance(out_side, dict) else None,
    )


def parse_captures(
    files: Iterable[tuple[str, str]],
) -> tuple[list[Captured], list[BadRecord]]:
    """Every record of (source, text) capture files, in order; bad ones apart."""
    records: list[Captured] = []
    bad: list[BadRecord] = []
    for source, text in files:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(parse_record(line, number))
            except ValueError as exc:
                bad.append(BadRecord(source, number, str(exc)))
    return records, bad


def _failed(answer: Answer) -> bool:
    return answer.status is None or answer.status >= 400


def _drift(reference: Sequence[float], current: Sequence[float]) -> dict[str, float] | None:
    if not reference or not current:
        return None
    # Imported here: scipy.stats takes ~0.6 s to import, paid by every gateway start
    # (gateway/app.py imports the replayer) for a report most gateways never make.
    from modelhost.monitor.drift import numeric_distances

    return numeric_distances(reference, current)


def compare(
    records: Sequence[Captured],
    answers: Sequence[Answer],
    tolerance: float,
    baseline: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The replay report (see the module docstring); `answers[i]` answers `records[i]`."""
    exact = numeric_ok = numeric_n = unparsed = 0
    diffs: list[float] = []
    latencies: list[float] = []
    captured_values: list[float] = []
    candidate_values: list[float] = []
    errors: list[dict[str, Any]] = []
    for rec, ans in zip(records, answers, strict=True):
        if _failed(ans):
            if len(errors) < MAX_ERRORS_LISTED:
                errors.append({"EventId": rec.event_id, "Status": ans.status, "Error": ans.error})
            continue
        latencies.append(ans.latency_us)
        if rec.output is not None and rec.output == ans.body:
            exact += 1
        pn, cn = parse_numbers(rec.output), parse_numbers(ans.body)
        captured_values.extend(pn or [])
        candidate_values.extend(cn or [])
        if pn is None or cn is None or len(pn) != len(cn):
            unparsed += 1
            continue
        numeric_n += 1
        gaps = [abs(a - b) for a, b in zip(pn, cn, strict=True)]
        diffs.extend(gaps)
        numeric_ok += all(g <= tolerance for g in gaps)
    n = len(records)
    failed = sum(_failed(a) for a in answers)

    def rate(k: int, total: int) -> float | None:
        return k / total if total else None

    drift: dict[str, Any] = {"Captured": _drift(captured_values, candidate_values)}
    if baseline is not None:
        drift["Baseline"] = _drift(baseline, candidate_values)
    return {
        "Records": n,
        "ExactAgreement": rate(exact, n),
        "NumericAgreement": rate(numeric_ok, numeric_n),
        "NumericCompared": numeric_n,
        "NumericUnparsed": unparsed,
        "Tolerance": tolerance,
        "NumericDifference": {
            "MaxAbs": max(diffs) if diffs else None,
            "MeanAbs": sum(diffs) / len(diffs) if diffs else None,
        },
        "Candidate": {
            "LatencyP50Us": _percentile(latencies, 0.5),
            "LatencyP99Us": _percentile(latencies, 0.99),
            "ErrorRate": rate(failed, n),
            "Errors": errors,
        },
        "OutputDrift": drift,
    }


def bad_records(bad: Sequence[BadRecord]) -> list[dict[str, Any]]:
    return [{"Source": b.source, "Line": b.line, "Reason": b.reason} for b in bad]
