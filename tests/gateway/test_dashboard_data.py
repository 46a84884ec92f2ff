"""The dashboard's data assembly without HTTP: ranges, totals, charts, events, scoping."""

from __future__ import annotations

from typing import Any

import pytest

from modelhost.errors import ValidationException
from modelhost.gateway.dashboard.data import (
    RANGES_S,
    DashboardData,
    Sources,
    parse_range,
    window,
)
from modelhost.telemetry.metric_store import MetricKey
from modelhost.telemetry.series import ENDPOINTS, SAGEMAKER, SeriesStore, instance_key
from modelhost.testing.clock import FakeClock

START = 1_800_000_000.0


def _described(name: str) -> dict[str, Any]:
    variants = [
        {
            "VariantName": v,
            "CurrentWeight": 0.5,
            "DesiredWeight": 0.5,
            "CurrentInstanceCount": 1,
            "DesiredInstanceCount": 1,
        }
        for v in ("A", "B")
    ]
    return {"EndpointName": name, "EndpointStatus": "InService", "ProductionVariants": variants}


class World:
    """Fake sources over a real series store on a fake clock."""

    def __init__(self, names: list[str]) -> None:
        self.clock = FakeClock(START)
        self.series = SeriesStore(clock=self.clock)
        self.names = names
        self.events: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        self.shadow_reads = 0

    def sources(self) -> Sources:
        def shadow(name: str) -> dict[str, Any]:
            self.shadow_reads += 1
            return {"ShadowVariants": []}

        return Sources(
            series=self.series,
            endpoints=lambda: [
                {"Name": n, "Status": "InService", "Events": self.events[n]} for n in self.names
            ],
            describe_endpoint=_described,
            bandit=lambda name: None,
            alarms=lambda: [
                {
                    "AlarmName": "a-5xx",
                    "StateValue": "ALARM",
                    "MetricName": "Invocation5XXErrors",
                    "Dimensions": [{"Name": "EndpointName", "Value": "a"}],
                },
                {"AlarmName": "kpi", "StateValue": "OK", "Dimensions": []},
            ],
            transform_jobs=lambda limit: [
                {
                    "TransformJobName": "job",
                    "TransformJobStatus": "InProgress",
                    "Progress": {"RecordsPlanned": 200, "RecordsDone": 50},
                }
            ],
            shadow_report=shadow,
            clock=self.clock,
        )

    def invoke(self, endpoint: str, variant: str, n: int, status: int = 200) -> None:
        for _ in range(n):
            self.series.record(endpoint, variant, status=status, model_us=2000, overhead_us=300)


def test_ranges_are_5_minutes_to_a_day_and_others_are_refused() -> None:
    assert min(RANGES_S.values()) == 300 and max(RANGES_S.values()) == 86400
    with pytest.raises(ValidationException, match="'range'"):
        parse_range("2w")


@pytest.mark.parametrize("label", list(RANGES_S))
def test_the_window_covers_the_range_in_about_150_round_periods(label: str) -> None:
    w = window(START + 17.3, RANGES_S[label])
    grid = w.grid()
    assert grid[0] % w.period_s == 0 and grid[-1] <= START + 17.3 < grid[-1] + w.period_s
    assert w.end - w.start >= RANGES_S[label]
    assert 50 <= len(grid) <= 200
    # Past 15 minutes the rollup tier is read, in whole minutes.
    assert w.coarse == (RANGES_S[label] > 900)
    assert not w.coarse or w.period_s % 60 == 0


def test_snapshot_totals_charts_and_events() -> None:
    world = World(["a", "b"])
    world.invoke("a", "A", 7)
    world.invoke("a", "B", 3, status=500)
    world.clock.advance(2)
    world.invoke("a", "A", 5)
    world.events["a"] = [
        {"Time": START - 7200, "Status": "Updating", "Message": "old"},
        {"Time": START + 1, "Status": "RollingBack", "Message": "alarm a-5xx"},
    ]
    data = DashboardData(world.sources())
    # The overview's totals come from what the store flushed (the rollup tier).
    world.clock.advance(3)
    world.series.flush()
    doc = data.snapshot("5m", ["a"], lambda name: True)
    a = next(e for e in doc["Endpoints"] if e["Name"] == "a")
    assert (a["Invocations"], a["Errors5XX"], a["Errors4XX"]) == (15, 3, 0)
    assert 300 <= doc["OverviewSeconds"] < 360
    assert a["Instances"] == 2 and [v["VariantName"] for v in a["Variants"]] == ["A", "B"]
    detail = doc["Details"]["a"]
    # Only events within the range are drawn.
    assert [e["Status"] for e in detail["Events"]] == ["RollingBack"]
    charts = {c["Id"]: c for c in detail["Charts"]}
    assert list(charts) == ["invocations", "model_latency", "overhead_latency", "cpu", "memory"]
    inv = {s["Label"]: s["Values"] for s in charts["invocations"]["Series"]}
    assert sum(inv["A Invocations"]) == 12 and sum(inv["5XX errors"]) == 3
    assert all(len(v) == len(charts["invocations"]["X"]) for v in inv.values())
    latency = {s["Label"]: s["Values"] for s in charts["model_latency"]["Series"]}
    p99 = [v for v in latency["A p99"] if v is not None]
    assert p99 and all(v == pytest.approx(2.0, rel=0.02) for v in p99)  # µs → ms
    assert "b" not in doc["Details"]
    job = doc["TransformJobs"][0]
    assert job["ProgressFraction"] == 0.25


def test_one_day_reads_the_rollup_tier() -> None:
    world = World(["a"])
    world.invoke("a", "A", 4)
    world.clock.advance(120)
    world.series.flush()
    doc = DashboardData(world.sources()).snapshot("1d", ["a"], lambda name: True)
    assert doc["PeriodSeconds"] % 60 == 0
    inv = doc["Details"]["a"]["Charts"][0]["Series"][0]
    assert sum(inv["Values"]) == 4 and doc["Endpoints"][0]["Invocations"] == 4


def test_instance_and_multi_model_charts() -> None:
    world = World(["a"])
    for instance, cpu in (("i-1", 40.0), ("i-2", 80.0)):
        world.series.observe(instance_key(ENDPOINTS, "CPUUtilization", "a", "A", instance), cpu)
    world.series.observe(instance_key(SAGEMAKER, "ModelCacheHit", "a", "A", "i-1"), 1.0)
    world.series.observe(instance_key(SAGEMAKER, "LoadedModelCount", "a", "A", "i-1"), 3.0)
    doc = DashboardData(world.sources()).snapshot("5m", ["a"], lambda name: True)
    charts = {c["Id"]: c for c in doc["Details"]["a"]["Charts"]}
    cpu = {s["Label"]: [v for v in s["Values"] if v is not None] for s in charts["cpu"]["Series"]}
    assert cpu == {"A/i-1": [40.0], "A/i-2": [80.0]}
    multi = {s["Label"]: s["Values"] for s in charts["multi_model"]["Series"]}
    assert sum(multi["A cache hits"]) == 1 and max(v or 0 for v in multi["A loaded models"]) == 3


def test_a_keys_endpoint_patterns_limit_what_it_sees() -> None:
    world = World(["a", "b"])
    doc = DashboardData(world.sources()).snapshot("1h", ["a", "b"], lambda name: name == "b")
    assert [e["Name"] for e in doc["Endpoints"]] == ["b"]
    assert list(doc["Details"]) == ["b"]
    # The alarm on endpoint a is hidden; an alarm on no endpoint is shown.
    assert [a["AlarmName"] for a in doc["Alarms"]] == ["kpi"]


def test_at_most_two_endpoints_in_detail_and_one_read_for_the_overview() -> None:
    names = [f"e{i:02d}" for i in range(50)]
    world = World(names)
    reads: list[tuple[MetricKey, ...]] = []
    totals: list[int] = []
    query, total = world.series.query, world.series.totals

    def counting(keys: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(tuple(keys))
        return query(keys, *args, **kwargs)

    def counting_totals(keys: Any, *args: Any) -> Any:
        keys = list(keys)
        totals.append(len(keys))
        return total(keys, *args)

    world.series.query = counting  # type: ignore[method-assign]
    world.series.totals = counting_totals  # type: ignore[method-assign]
    doc = DashboardData(world.sources()).snapshot("1h", names, lambda name: True)
    assert len(doc["Endpoints"]) == 50 and list(doc["Details"]) == ["e00", "e01"]
    # One batched read for every endpoint's totals; the charts of two endpoints only.
    assert totals == [50 * 3 * 2]
    assert len(reads) <= 2 * 20
