"""What modelhost's own instances report of themselves, for Prometheus: batching counters
and compiled-tier states, read at scrape time from the gateway's last poll of each
instance's `GET /modelhost/stats` (gateway/instance_stats.py; container/instance_stats.py
says what the numbers mean).

A collector rather than live metrics because the values are the instances' own counters:
the gateway only copies what it last read. Telemetry sits below fleet and gateway, so the
gateway plugs in plain rows. Instances whose server does not answer the call (a server of
the user's own) have no rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LABELS = ["EndpointName", "VariantName", "InstanceId"]


@dataclass(frozen=True)
class InstanceStatsRow:
    """One instance's last reported stats (`batches` is None when nothing batches)."""

    endpoint: str
    variant: str
    instance_id: str
    batches: int | None = None
    batched_rows: int = 0
    alone: int = 0
    compiled_models: dict[str, int] = field(default_factory=dict)  # by tier state


class InstanceStatsCollector(Collector):
    """Yields modelhost_instance_batches_total, modelhost_instance_batched_rows_total,
    modelhost_instance_unbatched_requests_total and modelhost_compiled_models."""

    def __init__(self) -> None:
        self.rows: Callable[[], Iterable[InstanceStatsRow]] = lambda: ()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        batches = CounterMetricFamily(
            "modelhost_instance_batches",
            "Predict calls an instance's batcher made (one request, or several merged).",
            labels=LABELS,
        )
        rows = CounterMetricFamily(
            "modelhost_instance_batched_rows",
            "Rows of those predict calls; more rows than calls means requests were merged.",
            labels=LABELS,
        )
        alone = CounterMetricFamily(
            "modelhost_instance_unbatched_requests",
            "Requests of a batching model that an instance predicted on their own.",
            labels=LABELS,
        )
        compiled = GaugeMetricFamily(
            "modelhost_compiled_models",
            "Models an instance holds, by compiled-tier state (off, pending, compiled, failed).",
            labels=[*LABELS, "State"],
        )
        for r in self.rows():
            labels = [r.endpoint, r.variant, r.instance_id]
            if r.batches is not None:
                batches.add_metric(labels, r.batches)
                rows.add_metric(labels, r.batched_rows)
                alone.add_metric(labels, r.alone)
            for state, count in sorted(r.compiled_models.items()):
                compiled.add_metric([*labels, state], count)
        yield batches
        yield rows
        yield alone
        yield compiled
