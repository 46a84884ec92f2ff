"""The dashboard draws an autoscaled variant's instance counts under its load."""

from __future__ import annotations

from modelhost.gateway.dashboard.charts import ChartWindow, endpoint_charts
from modelhost.scaling.metrics import count_key
from modelhost.telemetry.series import SeriesStore
from modelhost.testing.clock import FakeClock

START = 1_800_000_000


def test_instances_chart_follows_the_invocations_chart_only_when_scaled() -> None:
    clock = FakeClock(START)
    store = SeriesStore(clock=clock)
    endpoint = {"Variants": [{"VariantName": "A"}]}
    window = ChartWindow(START, START + 60, 10, False)
    plain = [c["Id"] for c in endpoint_charts(store, "ep", endpoint, window)]
    assert "instances" not in plain
    for serving, desired in ((1, 1), (1, 3), (3, 3)):
        store.observe(count_key("CurrentInstanceCount", "ep", "A"), serving)
        store.observe(count_key("DesiredInstanceCount", "ep", "A"), desired)
        clock.advance(10)
    charts = endpoint_charts(store, "ep", endpoint, window)
    assert [c["Id"] for c in charts][:2] == ["invocations", "instances"]
    lines = {s["Label"]: s["Values"] for s in charts[1]["Series"]}
    assert lines["A serving"][:3] == [1, 1, 3] and lines["A desired"][:3] == [1, 3, 3]
