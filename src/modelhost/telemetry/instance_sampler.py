"""CPUUtilization, MemoryUtilization and DiskUtilization per instance, read from /proc.

SageMaker publishes them in `/aws/sagemaker/Endpoints` with the dimensions EndpointName,
VariantName and the instance id. CPU is in percent of one core, so it goes up to
100 × cores (as SageMaker reports it); memory is the instance's resident set (its process
and their children) in percent of this machine's memory; disk is the used share of the
file system holding the state directory. Each value is also recorded on the variant's
series (EndpointName, VariantName), whose Average is the mean over its instances. Which
instances exist comes from an injected callable, so the sampler knows nothing of fleets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelhost.telemetry.metric_store import MetricKey
from modelhost.telemetry.series import ENDPOINTS, SeriesStore, instance_key

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class InstanceRef:
    """One instance to sample: who it is and its process ids."""

    endpoint: str
    variant: str
    instance_id: str
    pids: tuple[int, ...]


def cpu_percent(prev_ticks: int, ticks: int, prev_s: float, now_s: float, hz: int) -> float:
    """CPU time used between two readings, in percent of one core."""
    elapsed = now_s - prev_s
    if elapsed <= 0 or ticks < prev_ticks:
        return 0.0
    return (ticks - prev_ticks) / hz / elapsed * 100.0


class ProcReader:
    """Reads process CPU ticks and resident memory under a /proc root (a fake in tests)."""

    def __init__(self, root: Path = Path("/proc")) -> None:
        self.root = root

    def tree(self, pid: int) -> list[int]:
        """`pid` and its descendants (the instance's worker processes)."""
        out: list[int] = []
        todo = [pid]
        while todo and len(out) < 256:
            p = todo.pop()
            out.append(p)
            try:
                text = (self.root / str(p) / "task" / str(p) / "children").read_text()
            except OSError:
                continue
            todo.extend(int(c) for c in text.split())
        return out

    def ticks_and_rss(self, pid: int) -> tuple[int, int]:
        """(utime + stime in clock ticks, resident bytes); (0, 0) for a gone process."""
        try:
            stat = (self.root / str(pid) / "stat").read_text()
        except OSError:
            return 0, 0
        fields = stat.rsplit(")", 1)[-1].split()
        # After the command: state is field 3; utime 14, stime 15, rss 24 (1-based).
        return int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE_BYTES

    def memory_total(self) -> int:
        try:
            for line in (self.root / "meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


class InstanceSampler:
    """`sample()` records one reading of every instance `source` lists."""

    def __init__(
        self,
        source: Callable[[], list[InstanceRef]],
        store: SeriesStore,
        disk_path: Path,
        reader: ProcReader | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.store = store
        self.disk_path = disk_path
        self.reader = reader or ProcReader()
        self.clock = clock
        self._last: dict[str, tuple[int, float]] = {}

    def disk_percent(self) -> float:
        try:
            st = os.statvfs(self.disk_path)
        except OSError:
            return 0.0
        total = st.f_blocks * st.f_frsize
        return (total - st.f_bavail * st.f_frsize) / total * 100.0 if total else 0.0

    def sample(self) -> int:
        """Returns the number of instances sampled."""
        now = self.clock()
        refs = self.source()
        memory_total = self.reader.memory_total()
        disk = self.disk_percent()
        seen = set()
        for ref in refs:
            ticks = rss = 0
            for pid in ref.pids:
                for p in self.reader.tree(pid):
                    t, r = self.reader.ticks_and_rss(p)
                    ticks, rss = ticks + t, rss + r
            seen.add(ref.instance_id)
            previous = self._last.get(ref.instance_id)
            self._last[ref.instance_id] = (ticks, now)
            values = {
                "MemoryUtilization": rss / memory_total * 100.0 if memory_total else 0.0,
                "DiskUtilization": disk,
            }
            if previous is not None:
                values["CPUUtilization"] = cpu_percent(
                    previous[0], ticks, previous[1], now, CLOCK_TICKS
                )
            for metric, value in values.items():
                key = instance_key(ENDPOINTS, metric, ref.endpoint, ref.variant, ref.instance_id)
                self.store.observe(key, value)
                # The variant-level series (SageMaker's classic dimensions): its Average is
                # the mean over the instances.
                variant = MetricKey.of(
                    ENDPOINTS, metric, EndpointName=ref.endpoint, VariantName=ref.variant
                )
                self.store.observe(variant, value)
        for gone in set(self._last) - seen:
            del self._last[gone]
        return len(refs)
