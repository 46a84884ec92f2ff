"""A load test's results as text: the final table, JSON and CSV files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from modelhost.loadtest.stats import PERCENTILES, percentile_key

LATENCY_KEYS = (*(percentile_key(q) for q in PERCENTILES), "max")
HISTORY_COLUMNS = (
    "ElapsedSeconds",
    "Timestamp",
    "Users",
    "Requests",
    "Failures",
    "RequestsPerSecond",
    "FailuresPerSecond",
    *(percentile_key(q) for q in PERCENTILES),
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(result: dict[str, Any]) -> str:
    """The final table: requests, failures by error code, req/s and latency percentiles."""
    s = result["Summary"]
    latency = s["LatencyMs"]
    header = f"{'requests':>10}{'failures':>10}{'req/s':>10}" + "".join(
        f"{k + ' ms':>10}" for k in LATENCY_KEYS
    )
    row = f"{s['Requests']:>10}{s['Failures']:>10}{s['RequestsPerSecond']:>10.1f}" + "".join(
        f"{_ms(latency.get(k)):>10}" for k in LATENCY_KEYS
    )
    lines = [
        f"{result['Endpoint']}: {s['DurationSeconds']:.1f} s"
        + (f", {result['Workers']} Locust workers" if result.get("Workers") else ""),
        header,
        row,
    ]
    if s["FailuresByCode"]:
        lines.append("failures by error code:")
        lines.extend(f"  {code:<40}{n:>8}" for code, n in s["FailuresByCode"].items())
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=1))


def write_csv(result: dict[str, Any], stats_path: Path, history_path: Path) -> None:
    """`stats.csv`: one summary row (and one row per error code); `history.csv`: the timeline."""
    s = result["Summary"]
    with open(stats_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["Endpoint", "Requests", "Failures", "RequestsPerSecond"]
            + [f"{k}_ms" for k in LATENCY_KEYS]
        )
        writer.writerow(
            [result["Endpoint"], s["Requests"], s["Failures"], f"{s['RequestsPerSecond']:.3f}"]
            + [s["LatencyMs"].get(k) for k in LATENCY_KEYS]
        )
        if s["FailuresByCode"]:
            writer.writerow([])
            writer.writerow(["ErrorCode", "Occurrences"])
            writer.writerows(s["FailuresByCode"].items())
    with open(history_path, "w", newline="") as f:
        history = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        history.writeheader()
        history.writerows(result["Timeline"])
