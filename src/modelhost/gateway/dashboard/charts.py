"""One endpoint's charts for the dashboard, read from the series store.

Every chart shares the window's time grid (`X`, epoch seconds), so the page hands the
arrays to the charting library as they are. Counts are sums per period (absent periods are
0: nothing happened); latencies are percentiles in milliseconds and utilization an average
in percent, absent periods null (nothing measured).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelhost.scaling.metrics import count_key
from modelhost.telemetry.metric_store import MetricKey
from modelhost.telemetry.series import ENDPOINTS, SAGEMAKER, SeriesStore, variant_key

MAX_INSTANCE_SERIES = 16
DATA_METRICS = "aws/sagemaker/Endpoints/data-metrics"  # Model Monitor's namespace
DRIFT_PREFIX = "feature_baseline_drift_"
US_PER_MS = 1000.0


@dataclass(frozen=True)
class ChartWindow:
    """[start, end) in periods of `period_s`; `coarse` reads the rollup tier."""

    start: int
    end: int
    period_s: int
    coarse: bool

    def grid(self) -> list[int]:
        return list(range(self.start, self.end, self.period_s))


@dataclass(frozen=True)
class Line:
    """Lines of a chart from one read: the series merged into it and the statistics shown
    (one line each, labelled `<label> <statistic>` when there are several)."""

    label: str
    keys: tuple[MetricKey, ...]
    statistics: tuple[str, ...]
    scale: float = 1.0
    zero: bool = False  # an absent period is 0 (counts), not a gap


def read(store: SeriesStore, w: ChartWindow, line: Line) -> list[dict[str, Any]]:
    """The line's values on the window's grid; none when it has no data at all."""
    points = store.query(line.keys, w.start, w.end, w.period_s, w.coarse)
    if not points:
        return []
    found = {p.second: p for p in points}
    out = []
    for stat in line.statistics:
        values: list[float | None] = []
        for t in w.grid():
            p = found.get(t)
            v = p.statistic(stat) if p is not None else None
            if v is None:
                values.append(0.0 if line.zero else None)
            else:
                values.append(round(v * line.scale, 3))
        label = f"{line.label} {stat}" if len(line.statistics) > 1 else line.label
        out.append({"Label": label, "Values": values})
    return out


def chart(
    store: SeriesStore, w: ChartWindow, chart_id: str, title: str, unit: str, lines: list[Line]
) -> dict[str, Any]:
    series = [s for line in lines for s in read(store, w, line)]
    return {"Id": chart_id, "Title": title, "Unit": unit, "X": w.grid(), "Series": series}


def endpoint_charts(
    store: SeriesStore, name: str, endpoint: dict[str, Any], w: ChartWindow
) -> list[dict[str, Any]]:
    """Invocations and errors, model and overhead latency, the multi-model metrics (when
    the endpoint has any), CPU and memory per instance."""
    variants = [v["VariantName"] for v in endpoint["Variants"]]

    def latency(metric: str) -> list[Line]:
        ms = 1 / US_PER_MS
        return [Line(v, (variant_key(metric, name, v),), ("p50", "p99"), ms) for v in variants]

    def merged(metric: str, label: str) -> Line:
        keys = tuple(variant_key(metric, name, v) for v in variants)
        return Line(label, keys, ("Sum",), zero=True)

    invocations = [
        Line(f"{v} Invocations", (variant_key("Invocations", name, v),), ("Sum",), zero=True)
        for v in variants
    ]
    invocations += [
        merged("Invocation4XXErrors", "4XX errors"),
        merged("Invocation5XXErrors", "5XX errors"),
    ]
    out = [
        chart(store, w, "invocations", "Invocations and errors", "per period", invocations),
        chart(store, w, "model_latency", "ModelLatency", "ms", latency("ModelLatency")),
        chart(store, w, "overhead_latency", "OverheadLatency", "ms", latency("OverheadLatency")),
    ]
    # Autoscaled variants: their instance counts, drawn under the load.
    counts = [
        Line(f"{v} {label}", (count_key(metric, name, v),), ("Maximum",))
        for v in variants
        for metric, label in (
            ("CurrentInstanceCount", "serving"),
            ("DesiredInstanceCount", "desired"),
        )
    ]
    instances = chart(store, w, "instances", "Instances", "count", counts)
    if instances["Series"]:
        out.insert(1, instances)
    multi = _multi_model_lines(store, name, variants)
    if multi:
        out.append(chart(store, w, "multi_model", "Multi-model cache", "count", multi))
    drift = _drift_lines(store, name)
    if drift:
        out.append(chart(store, w, "drift", "Feature drift (Model Monitor)", "distance", drift))
    for metric, chart_id in (("CPUUtilization", "cpu"), ("MemoryUtilization", "memory")):
        lines = _instance_lines(store, name, metric)
        shown = chart(store, w, chart_id, f"{metric} per instance", "%", lines)
        shown["Series"] = shown["Series"][:MAX_INSTANCE_SERIES]
        out.append(shown)
    return out


def _multi_model_lines(store: SeriesStore, name: str, variants: list[str]) -> list[Line]:
    """Cache hits (ModelCacheHit's Sum), loads (ModelLoadingTime's SampleCount) and the
    loaded-model count (LoadedModelCount's Maximum over the instances) per variant."""
    lines = []
    for v in variants:
        dims = [("EndpointName", name), ("VariantName", v)]
        for metric, stat, label, zero in (
            ("ModelCacheHit", "Sum", "cache hits", True),
            ("ModelLoadingTime", "SampleCount", "loads", True),
            ("LoadedModelCount", "Maximum", "loaded models", False),
        ):
            keys = tuple(store.keys(SAGEMAKER, metric, dims))
            if keys:
                lines.append(Line(f"{v} {label}", keys, (stat,), zero=zero))
    return lines


def _drift_lines(store: SeriesStore, name: str) -> list[Line]:
    """One line per feature of the monitoring runs' `feature_baseline_drift_<feature>`
    (a point per execution, so the page joins them), at most MAX_INSTANCE_SERIES."""
    keys = [
        k
        for k in store.keys(DATA_METRICS, None, [("Endpoint", name)])
        if k.name.startswith(DRIFT_PREFIX)
    ]
    return [
        Line(k.name.removeprefix(DRIFT_PREFIX), (k,), ("Maximum",))
        for k in keys[:MAX_INSTANCE_SERIES]
    ]


def _instance_lines(store: SeriesStore, name: str, metric: str) -> list[Line]:
    """One line per instance; replaced instances keep their series, so at most
    MAX_INSTANCE_SERIES·4 are read and the first MAX_INSTANCE_SERIES with data are shown."""
    keys = store.keys(ENDPOINTS, metric, [("EndpointName", name), ("InstanceId", None)])
    return [
        Line(f"{k.dimension('VariantName')}/{k.dimension('InstanceId')}", (k,), ("Average",))
        for k in keys[-MAX_INSTANCE_SERIES * 4 :]
    ]
