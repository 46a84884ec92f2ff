"""Alarms over the metric series, with CloudWatch's semantics and names.

An alarm watches one metric (`AlarmSpec`), aggregates it over `Period`-second periods with
a statistic, and compares the last `EvaluationPeriods` datapoints with `Threshold`: ALARM
when at least `DatapointsToAlarm` of them breach, OK when fewer do, INSUFFICIENT_DATA when
there is no data and `TreatMissingData` is `missing`. `evaluate` is a pure function of the
definition, the series and the time; `AlarmBook` keeps definitions, states and history,
and is the one set of alarms behind CloudWatch's alarm API, the native `/api/alarms` and
the deployment guardrails' `AutoRollbackConfiguration`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from modelhost.telemetry.alarm_spec import COMPARISONS, STATISTICS, AlarmSpec
from modelhost.telemetry.metric_store import MetricKey, MetricStore
from modelhost.telemetry.series import ASYNC_ENDPOINT_METRICS, SAGEMAKER

__all__ = ["STATISTICS", "AlarmBook", "AlarmSpec", "AlarmState", "evaluate", "watched_keys"]

HISTORY_MAX = 100


class AlarmState(StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


def watched_keys(spec: AlarmSpec, series: MetricStore) -> list[MetricKey]:
    """The series an alarm reads: the one with exactly its dimensions; and, as modelhost's
    extension, an `AWS/SageMaker` alarm naming only an EndpointName reads all its variants
    together (SageMaker publishes per variant only), but for the async queue's metrics,
    which SageMaker publishes per endpoint."""
    key = spec.key
    per_endpoint = spec.metric in ASYNC_ENDPOINT_METRICS
    if (
        spec.namespace == SAGEMAKER
        and not per_endpoint
        and [n for n, _ in spec.dimensions] == ["EndpointName"]
    ):
        found = series.keys(SAGEMAKER, spec.metric, spec.dimensions)
        return [k for k in found if [n for n, _ in k.dimensions] == ["EndpointName", "VariantName"]]
    return [key]


def evaluate(spec: AlarmSpec, series: MetricStore, now: float) -> tuple[AlarmState, str]:
    """The alarm's state at `now` from the last complete periods, with a reason."""
    end = int(now) // spec.period_s * spec.period_s
    start = end - spec.evaluation_periods * spec.period_s
    keys = watched_keys(spec, series)
    found = {p.second: p for p in series.query(keys, start, end, spec.period_s)}
    points: list[float | None] = []
    for i in range(spec.evaluation_periods):
        p = found.get(end - (i + 1) * spec.period_s)
        points.append(p.statistic(spec.statistic) if p is not None else None)
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


class AlarmRecord:
    """One alarm's live copy: definition, state and when it last changed."""

    def __init__(self, spec: AlarmSpec, updated_s: float) -> None:
        self.spec = spec
        self.state = AlarmState.INSUFFICIENT_DATA
        self.reason = "Unchecked: Initial alarm creation"
        self.updated_s = updated_s
        self.configured_s = updated_s
        self.actions_enabled = spec.actions_enabled


def _stored(spec: AlarmSpec) -> Any:
    return json.loads(json.dumps(spec.describe()))


class AlarmBook:
    """Alarm definitions, their current states and their state history.

    `persist(name, document | None)` stores (or forgets) an alarm durably; the book keeps
    the live copy and re-evaluates every alarm on `evaluate_all`."""

    def __init__(
        self,
        series: MetricStore,
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
            record = self._alarms[spec.name] = AlarmRecord(spec, self.clock())
            record.actions_enabled = bool(doc.get("ActionsEnabled", spec.actions_enabled))
            if doc.get("StateValue") in AlarmState.__members__:
                record.state = AlarmState(doc["StateValue"])
                record.reason = str(doc.get("StateReason", record.reason))
                record.updated_s = float(doc.get("StateUpdatedTimestamp", record.updated_s))
            self._history[spec.name] = list(doc.get("History", []))

    def sync(
        self, documents: list[dict[str, Any]], take_state: bool, read_at: float = float("inf")
    ) -> None:
        """Several gateways: follow the stored alarms (put or deleted through any gateway).
        The leader evaluates and keeps its own states (`take_state` False: only new or
        redefined alarms are taken); the others take every state the leader stored. An
        alarm (re)defined here since `read_at` (when `documents` were read) is newer than
        them and left alone."""
        stored = {doc["Definition"]["AlarmName"]: doc for doc in documents}
        newer = {n for n, r in self._alarms.items() if r.configured_s >= read_at}
        for name in set(self._alarms) - set(stored) - newer:
            del self._alarms[name]
            self._history.pop(name, None)
        for name, doc in stored.items():
            record = self._alarms.get(name)
            if name in newer:
                continue
            # Compared as stored (JSON): tuples come back as lists. A stored state newer
            # than the leader's own is a SetAlarmState through another gateway.
            if (
                take_state
                or record is None
                or _stored(record.spec) != doc["Definition"]
                or float(doc.get("StateUpdatedTimestamp", 0.0)) > record.updated_s
            ):
                self.load([doc])

    def put(self, body: dict[str, Any]) -> AlarmSpec:
        spec = AlarmSpec.parse(body)
        now = self.clock()
        old = self._alarms.get(spec.name)
        record = self._alarms[spec.name] = AlarmRecord(spec, now)
        if old is not None and old.spec.key == spec.key:
            # An update of the same metric keeps the state (CloudWatch re-evaluates it).
            record.state, record.reason, record.updated_s = old.state, old.reason, old.updated_s
        history = self._history.setdefault(spec.name, [])
        verb = "updated" if old is not None else "created"
        history.append(
            {"Timestamp": now, "Type": "ConfigurationUpdate", "Summary": f"Alarm {verb}"}
        )
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

    def names(self) -> list[str]:
        return sorted(self._alarms)

    def record(self, name: str) -> AlarmRecord | None:
        return self._alarms.get(name)

    def history(self, name: str) -> list[dict[str, Any]]:
        return list(self._history.get(name, []))

    def describe(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for alarm_name, record in sorted(self._alarms.items()):
            if name is not None and alarm_name != name:
                continue
            out.append(
                {
                    **record.spec.describe(),
                    "ActionsEnabled": record.actions_enabled,
                    "StateValue": str(record.state),
                    "StateReason": record.reason,
                    "StateUpdatedTimestamp": record.updated_s,
                    "AlarmConfigurationUpdatedTimestamp": record.configured_s,
                    "History": self._history.get(alarm_name, [])[-20:],
                }
            )
        return out

    def set_state(self, name: str, state: AlarmState, reason: str) -> bool:
        """SetAlarmState: until the next evaluation disagrees. False if no such alarm."""
        record = self._alarms.get(name)
        if record is None:
            return False
        self._change(name, record, state, reason, self.clock())
        self._save(name)
        return True

    def set_actions_enabled(self, names: list[str], enabled: bool) -> None:
        for name in names:
            record = self._alarms.get(name)
            if record is not None and record.actions_enabled != enabled:
                record.actions_enabled = enabled
                self._save(name)

    def evaluate_all(self) -> list[str]:
        """Re-evaluate every alarm; returns the names whose state changed."""
        now = self.clock()
        changed = []
        for name, record in list(self._alarms.items()):
            state, reason = evaluate(record.spec, self.series, now)
            if state != record.state:
                self._change(name, record, state, reason, now)
                changed.append(name)
            record.reason = reason
        for name in changed:
            self._save(name)
        return changed

    def _change(
        self, name: str, record: AlarmRecord, state: AlarmState, reason: str, now: float
    ) -> None:
        self._history.setdefault(name, []).append(
            {
                "Timestamp": now,
                "Type": "StateUpdate",
                "Summary": f"Alarm updated from {record.state} to {state}",
                "Reason": reason,
                "OldState": str(record.state),
                "NewState": str(state),
            }
        )
        record.state, record.reason, record.updated_s = state, reason, now

    def _save(self, name: str) -> None:
        history = self._history.get(name, [])[-HISTORY_MAX:]
        self._history[name] = history
        record = self._alarms[name]
        self._persist(
            name,
            {
                "Definition": record.spec.describe(),
                "History": history,
                "ActionsEnabled": record.actions_enabled,
                "StateValue": str(record.state),
                "StateReason": record.reason,
                "StateUpdatedTimestamp": record.updated_s,
            },
        )
