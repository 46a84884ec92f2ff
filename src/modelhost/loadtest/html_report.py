"""A load test's HTML report: one self-contained file with inline SVG charts.

Charts: throughput (requests and failures per second), latency percentiles and users over
time as Locust measured them, and the endpoint's own ModelLatency, CPU and memory for the
same window (CloudWatch API). Nothing is fetched when the page is viewed.
"""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from pathlib import Path
from typing import Any

from modelhost.loadtest.charts import chart
from modelhost.loadtest.report import table
from modelhost.loadtest.stats import PERCENTILES, percentile_key

STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}pre{background:#f6f6f6;padding:1em}"
    "svg{display:block;margin:1em 0;border:1px solid #eee}"
)


def _series(timeline: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    return [(p["ElapsedSeconds"], p[key]) for p in timeline if p.get(key) is not None]


def _x_range(result: dict[str, Any]) -> tuple[float, float]:
    return (0.0, max(result.get("EndTime", 0.0) - result["StartTime"], 1.0))


def locust_charts(result: dict[str, Any]) -> list[str]:
    timeline = result["Timeline"]
    x = _x_range(result)
    return [
        chart(
            "Throughput (requests/s)",
            {
                "requests/s": _series(timeline, "RequestsPerSecond"),
                "failures/s": _series(timeline, "FailuresPerSecond"),
            },
            x_range=x,
        ),
        chart(
            "Latency per interval (ms, client side)",
            {percentile_key(q): _series(timeline, percentile_key(q)) for q in PERCENTILES},
            x_range=x,
        ),
        chart("Users", {"users": _series(timeline, "Users")}, x_range=x),
    ]


def endpoint_charts(result: dict[str, Any]) -> list[str]:
    start = result["StartTime"]
    out = []
    for label, variants in result.get("EndpointMetrics", {}).items():
        series = {
            variant: [(t - start, v) for t, v in points] for variant, points in variants.items()
        }
        out.append(chart(f"Endpoint {label}", series, x_range=_x_range(result)))
    return out


def render(result: dict[str, Any]) -> str:
    when = dt.datetime.fromtimestamp(result["StartTime"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Load test of {escape(result['Endpoint'])}</title><style>{STYLE}</style>",
        "</head><body>",
        f"<h1>Load test of {escape(result['Endpoint'])}</h1>",
        f"<p>Started {when} UTC. Phases: <code>{escape(json.dumps(result.get('Phases')))}</code>"
        " (SpawnRate: users added per minute).</p>",
        f"<pre>{escape(table(result))}</pre>",
        "<h2>As the load generator saw it</h2>",
        *locust_charts(result),
        "<h2>As the endpoint saw it (CloudWatch metrics)</h2>",
    ]
    endpoint = endpoint_charts(result)
    if endpoint:
        parts.extend(endpoint)
    else:
        reason = result.get("EndpointMetricsError", "no metrics were read")
        parts.append(f"<p>No endpoint metrics: {escape(reason)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(result: dict[str, Any], path: Path) -> None:
    path.write_text(render(result))
