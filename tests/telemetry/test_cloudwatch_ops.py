"""CloudWatch operations on the store and the alarm book, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.errors import (
    CloudWatchResourceNotFound,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
)
from modelhost.telemetry.alarms import AlarmBook
from modelhost.telemetry.cloudwatch import CloudWatch
from modelhost.telemetry.series import SeriesStore


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def cw() -> CloudWatch:
    clock = Clock(10_000.0)
    store = SeriesStore(clock)
    saved: dict[str, Any] = {}
    book = AlarmBook(store, lambda n, d: saved.__setitem__(n, d), clock)
    return CloudWatch(store, book, "us-east-1", "123456789012")


def _stats(cw: CloudWatch, **extra: Any) -> dict[str, Any]:
    params = {
        "Namespace": "Shop",
        "MetricName": "Cart",
        "StartTime": 9_000.0,
        "EndTime": 10_001.0,
        "Period": 60,
        "Statistics": ["Sum", "SampleCount", "Average", "Minimum", "Maximum"],
        **extra,
    }
    return cw.operations["GetMetricStatistics"](params)


def test_put_metric_data_forms_and_statistics(cw: CloudWatch) -> None:
    put = cw.operations["PutMetricData"]
    put({"Namespace": "Shop", "MetricData": [{"MetricName": "Cart", "Value": 4.0}]})
    put(
        {
            "Namespace": "Shop",
            "MetricData": [
                {"MetricName": "Cart", "Values": [1.0, 2.0], "Counts": [2, 1], "Timestamp": 9_990.0}
            ],
        }
    )
    put(
        {
            "Namespace": "Shop",
            "MetricData": [
                {
                    "MetricName": "Cart",
                    "StatisticValues": {
                        "SampleCount": 4,
                        "Sum": 20.0,
                        "Minimum": 2.0,
                        "Maximum": 8.0,
                    },
                }
            ],
        }
    )
    points = _stats(cw)["Datapoints"]
    assert sum(p["SampleCount"] for p in points) == 8
    assert sum(p["Sum"] for p in points) == 4 + 4 + 20
    assert min(p["Minimum"] for p in points) == 1.0 and max(p["Maximum"] for p in points) == 8.0
    with pytest.raises(InvalidParameterValue, match="reserved"):
        put({"Namespace": "AWS/SageMaker", "MetricData": [{"MetricName": "X", "Value": 1}]})
    with pytest.raises(MissingParameter):
        put({"Namespace": "Shop", "MetricData": [{"MetricName": "X"}]})


def test_get_metric_statistics_checks_its_parameters(cw: CloudWatch) -> None:
    with pytest.raises(InvalidParameterCombination):
        _stats(cw, Statistics=[])
    with pytest.raises(InvalidParameterValue):
        _stats(cw, Statistics=["Median"])
    with pytest.raises(InvalidParameterCombination, match="1440"):
        _stats(cw, Period=1, StartTime=0.0)
    with pytest.raises(MissingParameter, match="Namespace"):
        cw.operations["GetMetricStatistics"]({"MetricName": "x"})


def test_alarm_operations(cw: CloudWatch) -> None:
    ops = cw.operations
    body = {
        "AlarmName": "cart",
        "Namespace": "Shop",
        "MetricName": "Cart",
        "ExtendedStatistic": "p99",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 5.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    ops["PutMetricAlarm"](body)
    with pytest.raises(MissingParameter, match="ComparisonOperator"):
        ops["PutMetricAlarm"]({**body, "ComparisonOperator": None})
    with pytest.raises(InvalidParameterValue, match="ExtendedStatistic"):
        ops["PutMetricAlarm"]({**body, "ExtendedStatistic": "median"})
    (alarm,) = ops["DescribeAlarms"]({"AlarmNamePrefix": "ca"})["MetricAlarms"]
    assert alarm["AlarmArn"] == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:cart"
    assert alarm["ExtendedStatistic"] == "p99" and "Statistic" not in alarm
    assert ops["DescribeAlarms"]({"StateValue": "ALARM"})["MetricAlarms"] == []
    ops["SetAlarmState"]({"AlarmName": "cart", "StateValue": "ALARM", "StateReason": "drill"})
    assert ops["DescribeAlarms"]({"StateValue": "ALARM"})["MetricAlarms"][0]["AlarmName"] == "cart"
    for_metric = ops["DescribeAlarmsForMetric"]({"Namespace": "Shop", "MetricName": "Cart"})
    assert [a["AlarmName"] for a in for_metric["MetricAlarms"]] == ["cart"]
    history = ops["DescribeAlarmHistory"]({"AlarmName": "cart"})["AlarmHistoryItems"]
    assert [h["HistoryItemType"] for h in history] == ["StateUpdate", "ConfigurationUpdate"]
    ops["DisableAlarmActions"]({"AlarmNames": ["cart"]})
    assert ops["DescribeAlarms"]({})["MetricAlarms"][0]["ActionsEnabled"] is False
    with pytest.raises(CloudWatchResourceNotFound):
        ops["SetAlarmState"]({"AlarmName": "nope", "StateValue": "OK", "StateReason": "x"})
    with pytest.raises(CloudWatchResourceNotFound):
        ops["DeleteAlarms"]({"AlarmNames": ["cart", "nope"]})
    ops["DeleteAlarms"]({"AlarmNames": ["cart"]})
    assert ops["DescribeAlarms"]({})["MetricAlarms"] == []


def test_list_metrics_pages_and_filters(cw: CloudWatch) -> None:
    put = cw.operations["PutMetricData"]
    for i in range(620):
        dims = [{"Name": "Shop", "Value": f"s{i}"}]
        put(
            {
                "Namespace": "Shop",
                "MetricData": [{"MetricName": "Cart", "Dimensions": dims, "Value": 1.0}],
            }
        )
    first = cw.operations["ListMetrics"]({"Namespace": "Shop"})
    assert len(first["Metrics"]) == 500 and first["NextToken"] == "500"
    rest = cw.operations["ListMetrics"]({"Namespace": "Shop", "NextToken": "500"})
    assert len(rest["Metrics"]) == 120 and "NextToken" not in rest
    one = cw.operations["ListMetrics"]({"Dimensions": [{"Name": "Shop", "Value": "s7"}]})
    assert [m["Dimensions"] for m in one["Metrics"]] == [[{"Name": "Shop", "Value": "s7"}]]
