"""Async workers with a fake data plane and a FakeClock: capacity, scale from zero, and
a request whose dead worker already wrote its answer (no processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelhost.fleet.dataplane.plane import DataPlane, Limits
from modelhost.jobs.asyncinf.config import AsyncEndpointConfig
from modelhost.jobs.asyncinf.lease import backlog_gauges
from modelhost.jobs.asyncinf.metrics import AsyncMetrics
from modelhost.jobs.asyncinf.payloads import Payloads
from modelhost.jobs.asyncinf.worker import AsyncWorkers, WorkerSettings
from modelhost.routing.table import EndpointRoute, RoutingTable, VariantRoute
from modelhost.store.metadata import MetadataStore
from modelhost.store.queue import AsyncQueue, QueuedRequest, RequestStatus
from modelhost.telemetry.metric_store import MetricStore
from modelhost.telemetry.metrics import InvocationMetrics
from modelhost.testing.clock import FakeClock
from modelhost.testing.dataplane import (
    FakeHealth,
    FakeRoutes,
    FakeTransport,
    Handler,
    Reply,
    answer,
    instance,
)

LEASE_S = 10.0


def _route(n_instances: int) -> RoutingTable:
    instances = tuple(instance(f"i-{k}", 9000 + k) for k in range(n_instances))
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, instances),))
    return RoutingTable({"ep": route})


class Rig:
    """A queue on SQLite, a data plane on fakes, and workers over both."""

    def __init__(self, tmp_path: Path, per_instance: int = 2) -> None:
        self.tmp = tmp_path
        self.clock = FakeClock()
        self.queue = AsyncQueue(MetadataStore(f"sqlite:///{tmp_path / 'q.db'}"))
        self.routes = FakeRoutes(_route(0))
        self.transport = FakeTransport()
        limits = Limits(
            timeout_s=5.0, max_payload_bytes=1 << 20, model_busy_outstanding=8, home=tmp_path
        )
        plane = DataPlane(
            self.routes,
            FakeHealth(),
            self.transport,
            lambda: 0.0,
            lambda _n: None,
            InvocationMetrics(),
            limits,
            lambda e: f"arn:log:{e}",
        )
        config = AsyncEndpointConfig(str(tmp_path / "out"), None, per_instance)
        knobs = WorkerSettings(LEASE_S, 1.0, 0.1, "123456789012")
        self.workers = AsyncWorkers(
            self.queue,
            plane,
            lambda: {"ep": config},
            Payloads(None, tmp_path / "scratch"),
            AsyncMetrics(MetricStore()),
            knobs,
            self.clock,
        )

    def add(self, n: int) -> QueuedRequest:
        now = self.clock()
        row, _ = self.queue.enqueue(
            QueuedRequest(
                request_id=f"r{n}",
                endpoint="ep",
                inference_id=f"i{n}",
                output_location=str(self.tmp / "out" / f"r{n}.out"),
                received_s=now,
                expires_s=now + 600,
                invocation_timeout_s=60,
                headers={"ContentType": "text/csv"},
                payload=f"{n}".encode(),
            )
        )
        return row

    def serve(self, handler: Handler, n_instances: int = 1) -> None:
        self.routes.table = _route(n_instances)
        for k in range(n_instances):
            self.transport.handlers[("10.0.0.1", 9000 + k)] = handler

    async def drain(self) -> None:
        await asyncio.gather(*self.workers._tasks)


def test_no_instance_keeps_requests_queued_until_one_appears(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    for n in range(3):
        rig.add(n)

    async def scenario() -> None:
        await rig.workers.tick()
        assert rig.queue.counts("ep") == {"Queued": 3}
        gauges = backlog_gauges(rig.queue.backlogs().get("ep"), rig.workers.instances("ep"), 0)
        assert gauges["HasBacklogWithoutCapacity"] == 1.0
        rig.serve(answer(body=b"0.5\n", content_type=b"text/csv"))
        while rig.queue.counts("ep").get("Succeeded", 0) < 3:
            await rig.workers.tick()
            await rig.drain()

    asyncio.run(scenario())
    assert (tmp_path / "out" / "r2.out").read_bytes() == b"0.5\n"
    assert rig.queue.get("r0").response_type == "text/csv"  # type: ignore[union-attr]
    assert backlog_gauges(rig.queue.backlogs().get("ep"), 1, 0)["ApproximateBacklogSize"] == 0


def test_concurrency_is_per_instance_times_instances(tmp_path: Path) -> None:
    rig = Rig(tmp_path, per_instance=2)
    for n in range(7):
        rig.add(n)
    release = asyncio.Event()

    async def slow(_m: bytes, _p: bytes, _h: list[tuple[bytes, bytes]], _b: bytes) -> Reply:
        await release.wait()
        return 200, {b"content-type": b"text/csv"}, b"1\n"

    async def scenario() -> None:
        rig.serve(slow, n_instances=2)
        await rig.workers.tick()
        await rig.workers.tick()  # nothing finished: no room for more
        await asyncio.sleep(0.05)
        assert rig.queue.counts("ep") == {"Running": 4, "Queued": 3}
        release.set()
        await rig.drain()

    asyncio.run(scenario())
    assert rig.queue.counts("ep") == {"Succeeded": 4, "Queued": 3}


def test_a_request_whose_dead_worker_wrote_the_answer_is_not_run_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.add(1)
    rig.queue.lease("ep", "dead-gateway", rig.clock(), LEASE_S, 10)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "r1.out").write_bytes(b"first answer\n")
    rig.serve(answer(body=b"second answer\n"))

    async def scenario() -> None:
        await rig.workers.tick()  # still leased by the dead gateway
        assert rig.queue.get("r1").status is RequestStatus.RUNNING  # type: ignore[union-attr]
        rig.clock.advance(LEASE_S + 1)
        await rig.workers.tick()
        await rig.drain()

    asyncio.run(scenario())
    assert rig.queue.get("r1").status is RequestStatus.SUCCEEDED  # type: ignore[union-attr]
    assert rig.queue.get("r1").attempts == 2  # type: ignore[union-attr]
    assert rig.transport.calls == []
    assert (tmp_path / "out" / "r1.out").read_bytes() == b"first answer\n"
