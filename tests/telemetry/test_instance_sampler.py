"""The instance sampler reads CPU ticks and memory from a /proc tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.telemetry.instance_sampler import (
    CLOCK_TICKS,
    PAGE_BYTES,
    InstanceRef,
    InstanceSampler,
    ProcReader,
    cpu_percent,
)
from modelhost.telemetry.metric_store import MetricKey
from modelhost.telemetry.series import ENDPOINTS, SeriesStore, instance_key


def _proc(root: Path, pid: int, ticks: int, rss_pages: int, children: str = "") -> None:
    d = root / str(pid)
    (d / "task" / str(pid)).mkdir(parents=True, exist_ok=True)
    fields = ["S", *["0"] * 10, str(ticks), "0", *["0"] * 8, str(rss_pages)]
    (d / "stat").write_text(f"{pid} (python) " + " ".join(fields) + " 0 0\n")
    (d / "task" / str(pid) / "children").write_text(children)


def test_cpu_percent_is_of_one_core() -> None:
    assert cpu_percent(0, 200, 0.0, 1.0, 100) == 200.0  # two busy cores
    assert cpu_percent(100, 50, 0.0, 1.0, 100) == 0.0
    assert cpu_percent(0, 10, 5.0, 5.0, 100) == 0.0


def test_sampler_records_per_instance_and_per_variant(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal:       1000 kB\n")
    _proc(tmp_path, 10, 0, 10, children="11")
    _proc(tmp_path, 11, 0, 10)
    now = [100.0]
    store = SeriesStore(lambda: now[0])
    refs = [InstanceRef("ep", "A", "i-1", (10,))]
    sampler = InstanceSampler(lambda: refs, store, tmp_path, ProcReader(tmp_path), lambda: now[0])
    assert sampler.sample() == 1
    _proc(tmp_path, 10, CLOCK_TICKS, 10, children="11")  # one second of CPU in 2 s
    now[0] = 102.0
    sampler.sample()
    cpu = store.aggregate([instance_key(ENDPOINTS, "CPUUtilization", "ep", "A", "i-1")], 0, 200)
    assert cpu.count == 1 and cpu.total == pytest.approx(50.0)
    memory = store.aggregate(
        [instance_key(ENDPOINTS, "MemoryUtilization", "ep", "A", "i-1")], 0, 200
    )
    assert memory.maximum == pytest.approx(20 * PAGE_BYTES / 1024_000 * 100)
    variant = MetricKey.of(ENDPOINTS, "DiskUtilization", EndpointName="ep", VariantName="A")
    disk = store.aggregate([variant], 0, 200)
    assert disk.count == 2 and 0.0 < disk.maximum <= 100.0
