"""The gateway's poll of `GET /modelhost/stats`, without processes: instances faked at the
HTTP hop. Servers that do not answer it are left alone; a busy one keeps its last reading;
Prometheus gets one series per instance."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modelhost.gateway.instance_stats import InstanceStats
from modelhost.telemetry.metrics import InvocationMetrics

OURS = {
    "batching": {"batches": 4, "batchedRows": 10, "alone": 1, "largestRows": 5},
    "compiledModels": {"off": 0, "pending": 0, "compiled": 1, "failed": 0},
    "compiledTier": {"state": "compiled", "maxRows": 64},
}


class _Http:
    """Answers by instance address; counts the calls each address got."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.calls: dict[str, int] = {}

    async def request(
        self, address: str, method: bytes, path: bytes, headers: Any, body: bytes, timeout_s: float
    ) -> tuple[int, list[Any], bytes]:
        assert (method, path) == (b"GET", b"/modelhost/stats")
        self.calls[address] = self.calls.get(address, 0) + 1
        answer = self.answers[address]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _controller(http: _Http) -> Any:
    instances = [SimpleNamespace(instance_id=f"i-{a}", address=a) for a in ("ours", "byoc")]
    variant = SimpleNamespace(name="AllTraffic", instances=instances)
    route = SimpleNamespace(name="ep", variants=[variant], shadows=[])
    return SimpleNamespace(
        table=SimpleNamespace(endpoints={"ep": route}), client=SimpleNamespace(http=http)
    )


def test_the_poll_reads_ours_skips_others_and_keeps_a_busy_instances_last_reading() -> None:
    http = _Http()
    http.answers = {"ours": (200, [], json.dumps(OURS).encode()), "byoc": (404, [], b"no")}
    metrics = InvocationMetrics()
    stats = InstanceStats(_controller(http), 1.0, metrics)
    assert asyncio.run(stats.poll()) == 1
    http.answers["ours"] = TimeoutError()  # busy this round: the last reading stays
    assert asyncio.run(stats.poll()) == 1
    assert http.calls == {"ours": 2, "byoc": 1}  # a server that does not answer: asked once
    (entry,) = stats.describe("ep")
    assert entry["InstanceId"] == "i-ours" and entry["Batching"]["batchedRows"] == 10
    assert entry["CompiledTier"]["state"] == "compiled"
    assert stats.describe("other") == []
    samples = {
        (s.name, s.labels.get("State")): (s.labels, s.value)
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
        if s.name.startswith("modelhost_")
    }
    labels, value = samples[("modelhost_instance_batched_rows_total", None)]
    assert labels == {"EndpointName": "ep", "VariantName": "AllTraffic", "InstanceId": "i-ours"}
    assert value == 10
    assert samples[("modelhost_instance_batches_total", None)][1] == 4
    assert samples[("modelhost_instance_unbatched_requests_total", None)][1] == 1
    assert samples[("modelhost_compiled_models", "compiled")][1] == 1


def test_an_instance_without_batching_exports_only_its_tier_states() -> None:
    http = _Http()
    doc = {"batching": None, "compiledModels": {"off": 1}, "compiledTier": {"state": "off"}}
    http.answers = {"ours": (200, [], json.dumps(doc).encode()), "byoc": (200, [], b"[]")}
    metrics = InvocationMetrics()
    stats = InstanceStats(_controller(http), 1.0, metrics)
    assert asyncio.run(stats.poll()) == 1
    names = {
        s.name
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
        if s.name.startswith("modelhost_")
    }
    assert names == {"modelhost_compiled_models"}
