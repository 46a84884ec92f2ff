"""CloudWatch's metric and alarm operations over the series store and the alarm book.

Each operation takes the request as a dict of CloudWatch's members and returns the
response dict; timestamps are epoch seconds both ways (the protocol layer in `gateway/`
converts them). Errors carry CloudWatch's codes (InvalidParameterValue, MissingParameter,
InvalidParameterCombination, ResourceNotFound).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from modelhost.errors import (
    CloudWatchResourceNotFound,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
    ValidationException,
)
from modelhost.telemetry import metric_math
from modelhost.telemetry.alarms import AlarmBook, AlarmState
from modelhost.telemetry.metric_store import MetricKey, Point, percentile
from modelhost.telemetry.series import ENDPOINTS, INSTANCE_METRICS, SKETCHED, SeriesStore

STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
MAX_DATAPOINTS = 1440
PAGE = 500

Operation = Callable[[dict[str, Any]], dict[str, Any]]


def unit_of(key: MetricKey) -> str:
    """SageMaker's units: times in microseconds, utilization in percent, the rest counts."""
    if key.name in INSTANCE_METRICS and key.namespace == ENDPOINTS:
        return "Percent"
    if key.name in SKETCHED:
        return "Microseconds"
    return "None"


def _need(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise MissingParameter(f"The parameter {name} is required.")
    return value


def _key(params: dict[str, Any]) -> MetricKey:
    dims = params.get("Dimensions") or []
    pairs = []
    for d in dims:
        if not isinstance(d, dict) or "Name" not in d or "Value" not in d:
            raise InvalidParameterValue("Each dimension must have a Name and a Value.")
        pairs.append((str(d["Name"]), str(d["Value"])))
    return MetricKey(
        str(_need(params, "Namespace")), str(_need(params, "MetricName")), tuple(sorted(pairs))
    )


def _window(params: dict[str, Any], period_s: int) -> tuple[int, int]:
    start, end = float(_need(params, "StartTime")), float(_need(params, "EndTime"))
    if end <= start:
        raise InvalidParameterValue("The parameter StartTime must be less than EndTime.")
    first = math.floor(start / period_s) * period_s if period_s <= 3600 else int(start) // 60 * 60
    return int(first), math.ceil(end)


def _period(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidParameterValue("The parameter Period must be a positive integer.")
    return value


class CloudWatch:
    """The operations by name (`operations`), served by `gateway/cloudwatch_api.py`."""

    def __init__(self, store: SeriesStore, alarms: AlarmBook, region: str, account: str) -> None:
        self.store = store
        self.alarms = alarms
        self.region = region
        self.account = account
        self.units: dict[MetricKey, str] = {}
        self.operations: dict[str, Operation] = {
            "GetMetricStatistics": self.get_metric_statistics,
            "GetMetricData": self.get_metric_data,
            "ListMetrics": self.list_metrics,
            "PutMetricData": self.put_metric_data,
            "PutMetricAlarm": self.put_metric_alarm,
            "DescribeAlarms": self.describe_alarms,
            "DescribeAlarmsForMetric": self.describe_alarms_for_metric,
            "DeleteAlarms": self.delete_alarms,
            "SetAlarmState": self.set_alarm_state,
            "DescribeAlarmHistory": self.describe_alarm_history,
            "EnableAlarmActions": self.enable_alarm_actions,
            "DisableAlarmActions": self.disable_alarm_actions,
        }

    # --- metrics -------------------------------------------------------------------------

    def get_metric_statistics(self, params: dict[str, Any]) -> dict[str, Any]:
        key = _key(params)
        period = _period(_need(params, "Period"))
        stats = list(params.get("Statistics") or [])
        extended = list(params.get("ExtendedStatistics") or [])
        if not stats and not extended:
            raise InvalidParameterCombination(
                "Must specify either Statistics or ExtendedStatistics, but not both."
            )
        for s in stats:
            if s not in STATISTICS:
                raise InvalidParameterValue(f"The parameter Statistics has bad value {s}.")
        for s in extended:
            if percentile(s) is None:
                raise InvalidParameterValue(f"The parameter ExtendedStatistics has bad value {s}.")
        start, end = _window(params, period)
        if (end - start) / period > MAX_DATAPOINTS:
            raise InvalidParameterCombination(
                f"You have requested up to {(end - start) // period} datapoints, which exceeds "
                f"the limit of {MAX_DATAPOINTS}."
            )
        unit = self.units.get(key) or unit_of(key)
        points = []
        for p in self.store.query([key], start, end, period):
            dp: dict[str, Any] = {"Timestamp": float(p.second), "Unit": unit}
            for s in stats:
                dp[s] = p.statistic(s)
            if extended:
                dp["ExtendedStatistics"] = {
                    s: v for s in extended if (v := p.statistic(s)) is not None
                }
            points.append(dp)
        return {"Label": key.name, "Datapoints": points}

    def get_metric_data(self, params: dict[str, Any]) -> dict[str, Any]:
        queries = _need(params, "MetricDataQueries")
        if not isinstance(queries, list) or not 1 <= len(queries) <= 500:
            raise InvalidParameterValue("MetricDataQueries must hold 1 to 500 queries.")
        scope: dict[str, metric_math.Series] = {}
        labels: dict[str, str] = {}
        results = []
        for q in queries:
            qid = str(_need(q, "Id"))
            if q.get("MetricStat") and q.get("Expression"):
                raise InvalidParameterValue(
                    f"Query {qid} must have either MetricStat or Expression, not both."
                )
            if q.get("MetricStat"):
                scope[qid] = self._metric_stat(q["MetricStat"], params)
                labels[qid] = str(q.get("Label") or q["MetricStat"]["Metric"].get("MetricName"))
        for q in queries:
            qid = str(q["Id"])
            if qid not in scope:
                value = metric_math.evaluate(str(_need(q, "Expression")), scope)
                labels[qid] = str(q.get("Label") or qid)
            else:
                value = scope[qid]
            if q.get("ReturnData", True) is False:
                continue
            for series in _as_series(value, scope):
                results.append(_result(qid, labels[qid], series, params.get("ScanBy")))
        return {"MetricDataResults": results, "Messages": []}

    def _metric_stat(self, stat: dict[str, Any], params: dict[str, Any]) -> metric_math.Series:
        key = _key(_need(stat, "Metric"))
        period = _period(_need(stat, "Period"))
        name = str(_need(stat, "Stat"))
        if name not in STATISTICS and percentile(name) is None:
            raise InvalidParameterValue(f"The parameter Stat has bad value {name}.")
        start, end = _window(params, period)
        out: metric_math.Series = {}
        for p in self.store.query([key], start, end, period):
            value = p.statistic(name)
            if value is not None:
                out[p.second] = value
        return out

    def list_metrics(self, params: dict[str, Any]) -> dict[str, Any]:
        dims = [(str(d["Name"]), d.get("Value")) for d in params.get("Dimensions") or []]
        keys = self.store.keys(params.get("Namespace"), params.get("MetricName"), dims)
        first = _token(params.get("NextToken"))
        page = keys[first : first + PAGE]
        out: dict[str, Any] = {
            "Metrics": [
                {
                    "Namespace": k.namespace,
                    "MetricName": k.name,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in k.dimensions],
                }
                for k in page
            ]
        }
        if first + PAGE < len(keys):
            out["NextToken"] = str(first + PAGE)
        return out

    def put_metric_data(self, params: dict[str, Any]) -> dict[str, Any]:
        namespace = str(_need(params, "Namespace"))
        if namespace.startswith("AWS/"):
            raise InvalidParameterValue(
                f"The value {namespace} for parameter Namespace is invalid: the AWS/ "
                "namespaces are reserved."
            )
        data = _need(params, "MetricData")
        for datum in data:
            key = _key({**datum, "Namespace": namespace})
            if datum.get("Unit"):
                self.units[key] = str(datum["Unit"])
            at = datum.get("Timestamp")
            for value, count in _values(datum):
                for _ in range(count):
                    self.store.put(key, value, at)
        return {}

    # --- alarms --------------------------------------------------------------------------

    def put_metric_alarm(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("Metrics"):
            raise InvalidParameterValue("Alarms on metric math (Metrics) are not supported.")
        try:
            self.alarms.put(params)
        except ValidationException as exc:
            if "required" in exc.message:
                raise MissingParameter(exc.message) from exc
            raise InvalidParameterValue(exc.message) from exc
        return {}

    def _alarm(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = {k: v for k, v in doc.items() if k != "History"}
        doc["AlarmArn"] = (
            f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:{doc['AlarmName']}"
        )
        doc["StateTransitionedTimestamp"] = doc["StateUpdatedTimestamp"]
        return doc

    def describe_alarms(self, params: dict[str, Any]) -> dict[str, Any]:
        names = set(params.get("AlarmNames") or [])
        prefix = params.get("AlarmNamePrefix") or ""
        state = params.get("StateValue")
        types = params.get("AlarmTypes") or ["MetricAlarm"]
        found = [
            self._alarm(d)
            for d in self.alarms.describe()
            if (not names or d["AlarmName"] in names)
            and d["AlarmName"].startswith(prefix)
            and (state is None or d["StateValue"] == state)
            and "MetricAlarm" in types
        ]
        first = _token(params.get("NextToken"))
        size = int(params.get("MaxRecords") or 50)
        out: dict[str, Any] = {"MetricAlarms": found[first : first + size], "CompositeAlarms": []}
        if first + size < len(found):
            out["NextToken"] = str(first + size)
        return out

    def describe_alarms_for_metric(self, params: dict[str, Any]) -> dict[str, Any]:
        key = _key(params)
        found = []
        for d in self.alarms.describe():
            spec = self.alarms.record(d["AlarmName"])
            if spec is None or spec.spec.key != key:
                continue
            if params.get("Statistic") and d.get("Statistic") != params["Statistic"]:
                continue
            if params.get("ExtendedStatistic") and (
                d.get("ExtendedStatistic") != params["ExtendedStatistic"]
            ):
                continue
            if params.get("Period") and d["Period"] != params["Period"]:
                continue
            found.append(self._alarm(d))
        return {"MetricAlarms": found}

    def delete_alarms(self, params: dict[str, Any]) -> dict[str, Any]:
        names = list(_need(params, "AlarmNames"))
        missing = [n for n in names if self.alarms.state(n) is None]
        if missing:
            raise CloudWatchResourceNotFound(f"Alarm(s) not found: {', '.join(missing)}.")
        for name in names:
            self.alarms.delete(name)
        return {}

    def set_alarm_state(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(_need(params, "AlarmName"))
        value = str(_need(params, "StateValue"))
        if value not in AlarmState.__members__:
            raise InvalidParameterValue(f"The parameter StateValue has bad value {value}.")
        reason = str(_need(params, "StateReason"))
        if not self.alarms.set_state(name, AlarmState(value), reason):
            raise CloudWatchResourceNotFound(f"Alarm {name} not found.")
        return {}

    def describe_alarm_history(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("AlarmName")
        kind = params.get("HistoryItemType")
        start = float(params.get("StartDate") or 0.0)
        end = float(params.get("EndDate") or math.inf)
        items = []
        for name in self.alarms.names():
            if wanted is not None and name != wanted:
                continue
            for h in self.alarms.history(name):
                item_type = h.get("Type", "StateUpdate")
                if (kind and item_type != kind) or not start <= h["Timestamp"] <= end:
                    continue
                items.append(
                    {
                        "AlarmName": name,
                        "AlarmType": "MetricAlarm",
                        "Timestamp": float(h["Timestamp"]),
                        "HistoryItemType": item_type,
                        "HistorySummary": h.get("Summary", ""),
                        "HistoryData": h.get("Reason", ""),
                    }
                )
        # Newest first unless asked otherwise; entries of one instant keep their order.
        order = sorted(range(len(items)), key=lambda i: (items[i]["Timestamp"], i))
        if params.get("ScanBy") != "TimestampAscending":
            order.reverse()
        items = [items[i] for i in order]
        first = _token(params.get("NextToken"))
        size = int(params.get("MaxRecords") or 100)
        out: dict[str, Any] = {"AlarmHistoryItems": items[first : first + size]}
        if first + size < len(items):
            out["NextToken"] = str(first + size)
        return out

    def enable_alarm_actions(self, params: dict[str, Any]) -> dict[str, Any]:
        self.alarms.set_actions_enabled(list(_need(params, "AlarmNames")), True)
        return {}

    def disable_alarm_actions(self, params: dict[str, Any]) -> dict[str, Any]:
        self.alarms.set_actions_enabled(list(_need(params, "AlarmNames")), False)
        return {}


def _token(value: Any) -> int:
    if value in (None, ""):
        return 0
    try:
        return max(int(value), 0)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue("The NextToken is not valid.") from exc


def _values(datum: dict[str, Any]) -> list[tuple[float, int]]:
    """(value, count) pairs of one MetricDatum: Value, Values/Counts or StatisticValues."""
    if datum.get("StatisticValues"):
        sv = datum["StatisticValues"]
        n = max(int(sv["SampleCount"]), 1)
        # A summary keeps count, sum, min and max: spread as min, max and the rest at the mean.
        if n == 1:
            return [(float(sv["Sum"]), 1)]
        rest = (float(sv["Sum"]) - float(sv["Minimum"]) - float(sv["Maximum"])) / max(n - 2, 1)
        pairs = [(float(sv["Minimum"]), 1), (float(sv["Maximum"]), 1)]
        return pairs + ([(rest, n - 2)] if n > 2 else [])
    if datum.get("Values"):
        counts = datum.get("Counts") or [1] * len(datum["Values"])
        return [(float(v), int(c)) for v, c in zip(datum["Values"], counts, strict=False)]
    value = datum.get("Value")
    if value is None:
        raise MissingParameter("Each MetricDatum needs Value, Values or StatisticValues.")
    if not math.isfinite(float(value)):
        raise InvalidParameterValue("The parameter MetricData.Value must be a finite number.")
    return [(float(value), 1)]


def _as_series(value: metric_math.Value, scope: dict[str, metric_math.Series]) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    stamps = sorted(set().union(*(s.keys() for s in scope.values()))) if scope else []
    return [dict.fromkeys(stamps, float(value))]


def _result(qid: str, label: str, series: metric_math.Series, scan_by: Any) -> dict[str, Any]:
    stamps = sorted(series, reverse=scan_by != "TimestampAscending")
    values = [series[t] for t in stamps]
    keep = [i for i, v in enumerate(values) if math.isfinite(v)]
    return {
        "Id": qid,
        "Label": label,
        "Timestamps": [float(stamps[i]) for i in keep],
        "Values": [values[i] for i in keep],
        "StatusCode": "Complete",
    }


__all__ = ["CloudWatch", "Point"]
