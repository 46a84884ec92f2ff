"""Alarms over the recorded invocation metrics, with CloudWatch's semantics and names.

An alarm watches one metric of one endpoint (one variant, or all of them), aggregates it
over `Period`-second periods with a `Statistic`, and compares the last
`EvaluationPeriods` datapoints with `Threshold`: ALARM when at least `DatapointsToAlarm`
of them breach, OK when fewer do, INSUFFICIENT_DATA when there is no data and
`TreatMissingData` is `missing`. `evaluate` is a pure function of the definition, the
series and the time; `AlarmBook` keeps definitions, states and history.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from modelhost.errors import ValidationException
from modelhost.resources.names import ENDPOINT_NAME_RE
from modelhost.telemetry.series import METRICS, SeriesStore

STATISTICS = ("Average", "Sum", "SampleCount", "Minimum", "Maximum")
COMPARISONS = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
MISSING = ("missing", "notBreaching", "breaching", "ignore")
HISTORY_MAX = 100


class AlarmState(StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


@dataclass(frozen=True)
class AlarmSpec:
    """An alarm definition (the members of CloudWatch's PutMetricAlarm that apply)."""

    name: str
    metric: str
    endpoint: str
    variant: str | None
    statistic: str
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing: str = "missing"

    @classmethod
    def parse(cls, body: dict[str, Any]) -> AlarmSpec:
        """From a PutMetricAlarm-shaped JSON object; ValidationException names the field."""
        raw_dims = body.get("Dimensions") or []
        if not isinstance(raw_dims, list) or not all(
            isinstance(d, dict) and isinstance(d.get("Name"), str) for d in raw_dims
        ):
            raise ValidationException("Dimensions must be a list of {Name, Value} objects.")
        dims = {d["Name"]: d.get("Value") for d in raw_dims}

        def need(key: str) -> Any:
            if body.get(key) is None:
                raise ValidationException(f"{key} is required.")
            return body[key]

        def integer(key: str, default: int | None = None, low: int = 1) -> int:
            value = body.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValidationException(f"{key} must be an integer >= {low}.")
            return value

        name = need("AlarmName")
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise ValidationException("AlarmName must be a string of 1 to 255 characters.")
        metric = need("MetricName")
        if not isinstance(metric, str) or metric not in METRICS:
            raise ValidationException(f"MetricName must be one of {', '.join(METRICS)}.")
        namespace = body.get("Namespace", "AWS/SageMaker")
        if not isinstance(namespace, str) or namespace != "AWS/SageMaker":
            raise ValidationException("Namespace must be AWS/SageMaker.")
        endpoint = body.get("EndpointName") or dims.get("EndpointName")
        if not isinstance(endpoint, str) or not ENDPOINT_NAME_RE.match(endpoint):
            raise ValidationException(
                "Dimensions must name a valid EndpointName (and may name a VariantName)."
            )
        statistic = need("Statistic")
        if not isinstance(statistic, str) or statistic not in STATISTICS:
            raise ValidationException(f"Statistic must be one of {', '.join(STATISTICS)}.")
        comparison = need("ComparisonOperator")
        if not isinstance(comparison, str) or comparison not in COMPARISONS:
            raise ValidationException(
                f"ComparisonOperator must be one of {', '.join(COMPARISONS)}."
            )
        threshold = need("Threshold")
        if (
            not isinstance(threshold, int | float)
            or isinstance(threshold, bool)
            or not math.isfinite(threshold)
        ):
            raise ValidationException("Threshold must be a number.")
        treat = body.get("TreatMissingData", "missing")
        if not isinstance(treat, str) or treat not in MISSING:
            raise ValidationException(f"TreatMissingData must be one of {', '.join(MISSING)}.")
        periods = integer("EvaluationPeriods")
        to_alarm = integer("DatapointsToAlarm", periods)
        if to_alarm > periods:
            raise ValidationException("DatapointsToAlarm must not exceed EvaluationPeriods.")
        variant = body.get("VariantName") or dims.get("VariantName")
        if variant is not None and not isinstance(variant, str):
            raise ValidationException("VariantName must be a string.")
        return cls(
            name,
            metric,
            endpoint,
            variant,
            statistic,
            integer("Period", 60),
            periods,
            to_alarm,
            float(threshold),
            comparison,
            treat,
        )

    def describe(self) -> dict[str, Any]:
        dims = [{"Name": "EndpointName", "Value": self.endpoint}]
        if self.variant:
            dims.append({"Name": "VariantName", "Value": self.variant})
        return {
            "AlarmName": self.name,
            "Namespace": "AWS/SageMaker",
            "MetricName": self.metric,
            "Dimensions": dims,
            "Statistic": self.statistic,
            "Period": self.period_s,
            "EvaluationPeriods": self.evaluation_periods,
            "DatapointsToAlarm": self.datapoints_to_alarm,
            "Threshold": self.threshold,
            "ComparisonOperator": self.comparison,
            "TreatMissingData": self.treat_missing,
        }


def evaluate(spec: AlarmSpec, series: SeriesStore, now: float) -> tuple[AlarmState, str]:
    """The alarm's state at `now` from the last complete periods, with a reason."""
    end = int(now) // spec.period_s * spec.period_s
    points: list[float | None] = []
    for i in range(spec.evaluation_periods):
        agg = series.aggregate(
            spec.metric,
            spec.endpoint,
            spec.variant,
            end - (i + 1) * spec.period_s,
            end - i * spec.period_s,
        )
        points.append(agg.statistic(spec.statistic))
    test, words = COMPARISONS[spec.comparison]
    present = [p for p in points if p is not None]
    missing = len(points) - len(present)
    if not present and spec.treat_missing in ("missing", "ignore"):
        return AlarmState.INSUFFICIENT_DATA, (
            f"Insufficient Data: no datapoints in the last {spec.evaluation_periods} "
            f"period(s) of {spec.period_s} s"
        )
    breaching = sum(1 for p in present if test(p, spec.threshold))
    needed = spec.datapoints_to_alarm
    if spec.treat_missing == "breaching":
        breaching += missing
    elif spec.treat_missing in ("missing", "ignore"):
        # As CloudWatch: with fewer datapoints than DatapointsToAlarm, those present decide.
        needed = min(needed, len(present))
    shown = ", ".join("missing" if p is None else f"{p:g}" for p in points)
    if breaching >= needed:
        return AlarmState.ALARM, (
            f"Threshold Crossed: {breaching} out of the last {len(points)} datapoints "
            f"[{shown}] were {words} the threshold ({spec.threshold:g})."
        )
    return AlarmState.OK, (
        f"Threshold Not Crossed: {breaching} out of the last {len(points)} datapoints "
        f"[{shown}] were {words} the threshold ({spec.threshold:g})."
    )


@dataclass
class AlarmRecord:
    spec: AlarmSpec
    state: AlarmState = AlarmState.INSUFFICIENT_DATA
    reason: str = "Unchecked: Initial alarm creation"
    updated_s: float = 0.0


class AlarmBook:
    """Alarm definitions, their current states and their state history.

    `persist(name, document | None)` stores (or forgets) an alarm durably; the book keeps
    the live copy and re-evaluates every alarm on `evaluate_all`."""

    def __init__(
        self,
        series: SeriesStore,
        persist: Callable[[str, dict[str, Any] | None], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.series = series
        self.clock = clock
        self._persist = persist
        self._alarms: dict[str, AlarmRecord] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}

    def load(self, documents: list[dict[str, Any]]) -> None:
        for doc in documents:
            spec = AlarmSpec.parse(doc["Definition"])
            self._alarms[spec.name] = AlarmRecord(spec, updated_s=self.clock())
            self._history[spec.name] = list(doc.get("History", []))

    def put(self, body: dict[str, Any]) -> AlarmSpec:
        spec = AlarmSpec.parse(body)
        now = self.clock()
        self._alarms[spec.name] = AlarmRecord(spec, updated_s=now)
        history = self._history.setdefault(spec.name, [])
        history.append({"Timestamp": now, "Summary": "Alarm created or updated"})
        self._save(spec.name)
        return spec

    def delete(self, name: str) -> bool:
        self._history.pop(name, None)
        if self._alarms.pop(name, None) is None:
            return False
        self._persist(name, None)
        return True

    def state(self, name: str) -> AlarmState | None:
        record = self._alarms.get(name)
        return record.state if record else None

    def describe(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for alarm_name, record in sorted(self._alarms.items()):
            if name is not None and alarm_name != name:
                continue
            out.append(
                {
                    **record.spec.describe(),
                    "StateValue": str(record.state),
                    "StateReason": record.reason,
                    "StateUpdatedTimestamp": record.updated_s,
                    "History": self._history.get(alarm_name, [])[-20:],
                }
            )
        return out

    def evaluate_all(self) -> list[str]:
        """Re-evaluate every alarm; returns the names whose state changed."""
        now = self.clock()
        changed = []
        for name, record in self._alarms.items():
            state, reason = evaluate(record.spec, self.series, now)
            if state != record.state:
                self._history.setdefault(name, []).append(
                    {
                        "Timestamp": now,
                        "Summary": f"Alarm updated from {record.state} to {state}",
                        "Reason": reason,
                    }
                )
                record.state, record.updated_s = state, now
                changed.append(name)
            record.reason = reason
        for name in changed:
            self._save(name)
        return changed

    def _save(self, name: str) -> None:
        history = self._history.get(name, [])[-HISTORY_MAX:]
        self._history[name] = history
        self._persist(name, {"Definition": self._alarms[name].spec.describe(), "History": history})
