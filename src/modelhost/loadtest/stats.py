"""Load-test figures from Locust's counters, as pure functions (no Locust import here).

The Locust process samples the cumulative totals every interval (request and failure
counts, and the response-time histogram: rounded milliseconds → count, as Locust keeps
it). The difference of two samples is one point of the timeline, with that interval's own
throughput and percentiles, so the charts show the latency of each moment rather than a
running average. The same functions work for one process and for Locust's master, whose
totals include every worker's.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

PERCENTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class Sample:
    """Cumulative totals at wall-clock time `t` (seconds since the epoch)."""

    t: float
    users: int
    requests: int
    failures: int
    response_times: Mapping[int, int] = field(default_factory=dict)


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The `q` quantile (0..1) of a histogram of value → count; None when it is empty."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return float(value)
    return float(max(histogram))


def histogram_delta(before: Mapping[int, int], after: Mapping[int, int]) -> dict[int, int]:
    """What `after` holds beyond `before` (both cumulative)."""
    out = {k: n - before.get(k, 0) for k, n in after.items()}
    return {k: n for k, n in out.items() if n > 0}


def timeline_point(prev: Sample, cur: Sample, start_t: float) -> dict[str, Any]:
    """One interval of the timeline: throughput, failures and latency percentiles in it."""
    span = cur.t - prev.t
    requests = cur.requests - prev.requests
    failures = cur.failures - prev.failures
    delta = histogram_delta(prev.response_times, cur.response_times)
    point: dict[str, Any] = {
        "ElapsedSeconds": round(cur.t - start_t, 3),
        "Timestamp": cur.t,
        "Users": cur.users,
        "Requests": requests,
        "Failures": failures,
        "RequestsPerSecond": requests / span if span > 0 else 0.0,
        "FailuresPerSecond": failures / span if span > 0 else 0.0,
    }
    for q in PERCENTILES:
        point[percentile_key(q)] = percentile(delta, q)
    return point


def timeline(samples: list[Sample]) -> list[dict[str, Any]]:
    """Points between consecutive samples, timed from the first sample."""
    if len(samples) < 2:
        return []
    return [timeline_point(a, b, samples[0].t) for a, b in itertools.pairwise(samples)]


def percentile_key(q: float) -> str:
    return f"p{q * 100:g}"


def errors_by_code(errors: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Failures per error code (the Locust process reports each failure as its code)."""
    out: dict[str, int] = {}
    for code, count in errors:
        out[code] = out.get(code, 0) + count
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def summary(
    last: Sample, duration_s: float, max_ms: float | None, errors: dict[str, int]
) -> dict[str, Any]:
    """The final table's figures for the whole test."""
    out: dict[str, Any] = {
        "Requests": last.requests,
        "Failures": last.failures,
        "FailuresByCode": errors,
        "DurationSeconds": round(duration_s, 3),
        "RequestsPerSecond": last.requests / duration_s if duration_s > 0 else 0.0,
        "LatencyMs": {percentile_key(q): percentile(last.response_times, q) for q in PERCENTILES},
    }
    out["LatencyMs"]["max"] = max_ms
    return out


_PROGRESS_LATENCY = re.compile(r"\b(p\d+) (\d+(?:\.\d+)?)\b")


def progress_latencies(line: str) -> dict[str, float]:
    """The interval percentiles of one progress line of the Locust process (`p99 12`)."""
    return {k: float(v) for k, v in _PROGRESS_LATENCY.findall(line)}
