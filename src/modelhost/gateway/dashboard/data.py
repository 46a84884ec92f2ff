"""What the dashboard shows, assembled as plain data (no HTTP here; `routes.py` serves it).

One `snapshot` answers one refresh of the page: every endpoint's status, variants and
invocation totals of the last few minutes, the alarms, the recent transform jobs, and for the
one or two endpoints on screen (two in the compare view) their charts, deployment events,
bandit weights and shadow agreement. The page makes one call per refresh whatever the
number of endpoints, and the overview's totals of every endpoint are one batched read of
the series store (`MetricStore.totals`).

`state` reads the control plane (cheap, on the event loop); `metrics` reads the series
store (the bulk of the time, in a worker thread). Windows over 15 minutes read the 60-second
rollup tier, so a day of one series is 1,440 rows rather than 86,400.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from modelhost.errors import ValidationException
from modelhost.gateway.dashboard.charts import ChartWindow, endpoint_charts
from modelhost.telemetry.series import SeriesStore, variant_key

# The ranges the page offers, by their label (5 minutes to 1 day, as the issue asks).
RANGES_S: dict[str, int] = {
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "3h": 3 * 3600,
    "6h": 6 * 3600,
    "1d": 86400,
}
FINE_LIMIT_S = 900
OVERVIEW_S = 300
_FINE_PERIODS = (1, 2, 5, 10, 15, 30)
_COARSE_PERIODS = (60, 120, 180, 300, 600, 900, 1800, 3600)
TARGET_POINTS = 150
MAX_DETAIL = 2
MAX_JOBS = 20
SHADOW_CACHE_S = 10.0
MONITORING_CACHE_S = 5.0
NO_MONITORING: dict[str, Any] = {"Schedules": [], "Executions": []}


def parse_range(label: str) -> int:
    """Seconds of a range label; ValidationException naming the field otherwise."""
    seconds = RANGES_S.get(label)
    if seconds is None:
        raise ValidationException(
            f"1 validation error detected: Value '{label[:20]}' at 'range' failed to satisfy "
            f"constraint: Member must satisfy enum value set: {list(RANGES_S)}"
        )
    return seconds


def window(now: float, range_s: int) -> ChartWindow:
    """The chart grid: about TARGET_POINTS periods of a round length ending now."""
    wanted = range_s / TARGET_POINTS
    coarse = range_s > FINE_LIMIT_S
    choices = _COARSE_PERIODS if coarse else _FINE_PERIODS
    period = next((p for p in choices if p >= wanted), choices[-1])
    end = int(now) // period * period + period
    return ChartWindow(end - range_s // period * period - period, end, period, coarse)


@dataclass
class Sources:
    """Where the dashboard reads from; the gateway wires these to its parts."""

    series: SeriesStore
    endpoints: Callable[[], list[dict[str, Any]]]  # [{"Name", "Status", "Events", ...}]
    describe_endpoint: Callable[[str], dict[str, Any]]  # DescribeEndpoint's answer
    bandit: Callable[[str], dict[str, Any] | None]  # the bandit's weights, None without one
    alarms: Callable[[], list[dict[str, Any]]]  # DescribeAlarms' MetricAlarms
    transform_jobs: Callable[[int], list[dict[str, Any]]]  # newest first, with Progress
    shadow_report: Callable[[str], dict[str, Any]]  # telemetry.shadow_report.report
    clock: Callable[[], float] = time.time
    # dashboard/monitoring.py's summary: schedules, last executions and their violations
    monitoring: Callable[[str], dict[str, Any]] = field(default=lambda _name: NO_MONITORING)
    # Each instance's batching counters and compiled-tier states (gateway/instance_stats.py)
    instances: Callable[[str], list[dict[str, Any]]] = field(default=lambda _name: [])


@dataclass
class State:
    """The control-plane half of a snapshot; `metrics` adds the series to it."""

    now: float
    range_s: int
    detail: list[str]
    endpoints: list[dict[str, Any]]
    doc: dict[str, Any] = field(default_factory=dict)


class DashboardData:
    """Builds snapshots from `Sources`; see the module docstring."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self._shadow: dict[str, tuple[float, dict[str, Any]]] = {}
        self._monitoring: dict[str, tuple[float, dict[str, Any]]] = {}

    def snapshot(
        self, range_label: str, detail: Iterable[str], allowed: Callable[[str], bool]
    ) -> dict[str, Any]:
        """Everything one refresh shows (both halves, for callers without an event loop)."""
        state = self.state(range_label, detail, allowed)
        return self.metrics(state)

    def state(
        self, range_label: str, detail: Iterable[str], allowed: Callable[[str], bool]
    ) -> State:
        range_s = parse_range(range_label)
        src = self.sources
        now = src.clock()
        records = [e for e in src.endpoints() if allowed(e["Name"])]
        names = {e["Name"] for e in records}
        wanted = [n for n in dict.fromkeys(detail) if n in names][:MAX_DETAIL]
        endpoints = [self._endpoint(e) for e in sorted(records, key=lambda e: e["Name"])]
        state = State(now, range_s, wanted, endpoints)
        state.doc = {
            "Now": now,
            "Range": range_label,
            "RangeSeconds": range_s,
            "Endpoints": endpoints,
            "Alarms": [_alarm(a) for a in src.alarms() if _alarm_allowed(a, allowed)],
            "TransformJobs": [_job(j) for j in src.transform_jobs(MAX_JOBS)],
            "Details": {},
        }
        start = now - range_s
        shown = {e["Name"]: e for e in endpoints}
        for e in records:
            name = e["Name"]
            if name in wanted:
                shadow = any(v["Shadow"] for v in shown[name]["Variants"])
                state.doc["Details"][name] = {
                    "Events": [ev for ev in e.get("Events", []) if ev["Time"] >= start],
                    "Bandit": src.bandit(name),
                    "Shadow": self._shadow_summary(name, now) if shadow else [],
                    "Instances": src.instances(name),
                }
        return state

    def metrics(self, state: State) -> dict[str, Any]:
        """Add the series: each endpoint's totals over the last OVERVIEW_S (whole minutes of
        the rollup tier: a few rows per series, so 50 endpoints stay cheap), and the charts
        of the detailed ones over the chosen range."""
        store = self.sources.series
        end = int(state.now) + 1
        start = (end - OVERVIEW_S) // 60 * 60
        state.doc["OverviewSeconds"] = end - start
        fields = (
            ("Invocations", "Invocations"),
            ("Invocation4XXErrors", "Errors4XX"),
            ("Invocation5XXErrors", "Errors5XX"),
        )
        keys = {
            (e["Name"], total, v["VariantName"]): variant_key(metric, e["Name"], v["VariantName"])
            for e in state.endpoints
            for metric, total in fields
            for v in e["Variants"]
            if not v.get("Shadow")
        }
        found = store.totals(keys.values(), start, end)
        for e in state.endpoints:
            for _, total in fields:
                e[total] = 0.0
        named = {e["Name"]: e for e in state.endpoints}
        for (name, total, _), key in keys.items():
            if key in found:
                named[name][total] += found[key].total
        grid = window(state.now, state.range_s)
        state.doc["PeriodSeconds"] = grid.period_s
        for name in state.detail:
            e = next(x for x in state.endpoints if x["Name"] == name)
            state.doc["Details"][name]["Charts"] = endpoint_charts(store, name, e, grid)
            state.doc["Details"][name]["Monitoring"] = self._monitoring_summary(name, state.now)
        return state.doc

    def _endpoint(self, e: dict[str, Any]) -> dict[str, Any]:
        described = self.sources.describe_endpoint(e["Name"])
        variants = [
            {**_variant(v), "Shadow": False} for v in described.get("ProductionVariants", [])
        ]
        variants += [
            {**_variant(v), "Shadow": True} for v in described.get("ShadowProductionVariants", [])
        ]
        out = {
            "Name": e["Name"],
            "Status": described.get("EndpointStatus", e.get("Status")),
            "EndpointConfigName": described.get("EndpointConfigName"),
            "Variants": variants,
            "Instances": sum(v.get("CurrentInstanceCount") or 0 for v in variants),
        }
        if described.get("FailureReason"):
            out["FailureReason"] = described["FailureReason"]
        return out

    def _monitoring_summary(self, name: str, now: float) -> dict[str, Any]:
        """Schedules, executions and violations, re-read at most every MONITORING_CACHE_S
        (violations are files, possibly in S3); in the worker thread, as `metrics` runs."""
        cached = self._monitoring.get(name)
        if cached is None or now - cached[0] > MONITORING_CACHE_S:
            cached = self._monitoring[name] = (now, self.sources.monitoring(name))
        return cached[1]

    def _shadow_summary(self, name: str, now: float) -> list[dict[str, Any]]:
        """Agreement per shadow variant, recomputed at most every SHADOW_CACHE_S (the report
        reads every captured pair)."""
        cached = self._shadow.get(name)
        if cached is None or now - cached[0] > SHADOW_CACHE_S:
            report = self.sources.shadow_report(name)
            rows = [
                {
                    "VariantName": v["VariantName"],
                    "Pairs": v["Pairs"],
                    "ExactAgreement": v["ExactAgreement"],
                    "NumericAgreement": v["NumericAgreement"],
                }
                for v in report.get("ShadowVariants", [])
            ]
            cached = self._shadow[name] = (now, {"Rows": rows})
        rows_out: list[dict[str, Any]] = cached[1]["Rows"]
        return rows_out


def _variant(v: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "VariantName",
        "CurrentWeight",
        "DesiredWeight",
        "CurrentInstanceCount",
        "DesiredInstanceCount",
    )
    return {k: v.get(k) for k in keys}


def _alarm(a: dict[str, Any]) -> dict[str, Any]:
    dims = {d["Name"]: d["Value"] for d in a.get("Dimensions", [])}
    return {
        "AlarmName": a["AlarmName"],
        "StateValue": a.get("StateValue"),
        "StateReason": a.get("StateReason"),
        "StateUpdatedTimestamp": a.get("StateUpdatedTimestamp"),
        "Namespace": a.get("Namespace"),
        "MetricName": a.get("MetricName"),
        "EndpointName": dims.get("EndpointName"),
    }


def _alarm_allowed(a: dict[str, Any], allowed: Callable[[str], bool]) -> bool:
    """Alarms on an endpoint follow the key's endpoint patterns; others are shown to all
    (CloudWatch alarms have no endpoint resource)."""
    for d in a.get("Dimensions", []):
        if d.get("Name") == "EndpointName":
            return allowed(str(d.get("Value")))
    return True


def _job(j: dict[str, Any]) -> dict[str, Any]:
    progress = j.get("Progress") or {}
    planned, done = progress.get("RecordsPlanned") or 0, progress.get("RecordsDone") or 0
    objects, objects_done = progress.get("ObjectsTotal") or 0, progress.get("ObjectsDone") or 0
    if planned:
        fraction = done / planned
    elif objects:
        fraction = objects_done / objects
    else:
        fraction = 1.0 if j.get("TransformJobStatus") == "Completed" else 0.0
    return {
        "TransformJobName": j["TransformJobName"],
        "TransformJobStatus": j.get("TransformJobStatus"),
        "CreationTime": j.get("CreationTime"),
        "FailureReason": j.get("FailureReason"),
        "Progress": progress,
        "ProgressFraction": min(max(fraction, 0.0), 1.0),
    }
