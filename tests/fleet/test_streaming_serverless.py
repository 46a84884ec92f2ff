"""A serverless variant's streamed invocation: relayed part by part from an instance the pool
reserves for the stream and gets back when it ends (also when the client leaves early)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelhost.errors import ModelError, ModelStreamError
from modelhost.fleet.dataplane.plane import DataPlane, Invocation, Limits
from modelhost.fleet.dataplane.streaming import StreamingPlane
from modelhost.fleet.instance import Instance
from modelhost.fleet.local import free_port
from modelhost.routing.table import EndpointRoute, RoutingTable, VariantRoute
from modelhost.telemetry.metrics import InvocationMetrics
from modelhost.testing.clock import FakeClock
from modelhost.testing.dataplane import FakeHealth, FakeRoutes, FakeTransport, instance
from tests.fleet.stream_support import CHUNKED, chunk


@dataclass
class FakeCapacity:
    """Hands out `instance` for every invocation; records acquires and releases."""

    instance: Instance
    acquired: int = 0
    released: list[str] = field(default_factory=list)
    on_acquire: Callable[[], object] = lambda: None  # a cold start, say

    async def acquire(self, endpoint: str, variant: str, timeout_s: float) -> Instance:
        self.acquired += 1
        self.on_acquire()
        return self.instance

    async def release(self, endpoint: str, variant: str, instance: Instance) -> None:
        self.released.append(instance.instance_id)


@asynccontextmanager
async def tokens(gate: asyncio.Event) -> AsyncIterator[int]:
    """A server answering `a`, then (once `gate` is set) `b`, chunked."""

    handlers: list[asyncio.Task[None]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            size = int(head.lower().split(b"content-length: ")[1].split(b"\r")[0])
            await reader.readexactly(size)
            writer.write(CHUNKED + chunk(b"a"))
            await gate.wait()
            writer.write(chunk(b"b") + chunk(b""))
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await answer(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def _setup(tmp_path: Path, target: Instance) -> tuple[StreamingPlane, EndpointRoute, FakeCapacity]:
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (), serverless=True),))
    capacity = FakeCapacity(target)
    plane = DataPlane(
        FakeRoutes(RoutingTable({"ep": route})),
        FakeHealth(),
        FakeTransport(),
        lambda: 0.0,
        lambda _name: None,
        InvocationMetrics(),
        Limits(30.0, 1000, 8, tmp_path),
        lambda e, _path: f"arn:log:{e}",
        capacity=capacity,
    )
    return StreamingPlane(plane), route, capacity


def _request() -> Invocation:
    forward = [(b"content-type", b"text/plain")]
    return Invocation("ep", dict(forward), forward, b"x", None, None, 0.0, "req-1")


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_serverless_stream_is_relayed_part_by_part(tmp_path: Path) -> None:
    async def main() -> None:
        gate = asyncio.Event()
        async with tokens(gate) as port:
            streaming, route, capacity = _setup(tmp_path, instance("s1", port, host="127.0.0.1"))
            streamed = await streaming.invoke(route, _request())
            assert await anext(streamed.parts) == b"a"  # before the server wrote `b`
            assert capacity.released == []  # reserved while it streams
            gate.set()
            assert [p async for p in streamed.parts] == [b"b"]
            await _settle()
            assert (capacity.acquired, capacity.released) == (1, ["s1"])

    asyncio.run(main())


def test_a_client_gone_gives_the_instance_back(tmp_path: Path) -> None:
    async def main() -> None:
        async with tokens(asyncio.Event()) as port:
            streaming, route, capacity = _setup(tmp_path, instance("s1", port, host="127.0.0.1"))
            streamed = await streaming.invoke(route, _request())
            assert await anext(streamed.parts) == b"a"
            streamed.close()
            await _settle()
            assert capacity.released == ["s1"]

    asyncio.run(main())


def test_an_instance_that_died_is_the_serverless_model_error(tmp_path: Path) -> None:
    async def main() -> None:
        gone = instance("s1", free_port(), host="127.0.0.1")  # nothing listens
        streaming, route, capacity = _setup(tmp_path, gone)
        health = streaming.plane.core.health
        assert isinstance(health, FakeHealth)
        health.dead.add("s1")
        with pytest.raises(ModelError, match="exited while serving"):
            await streaming.invoke(route, _request())
        await _settle()
        assert capacity.released == ["s1"]

    asyncio.run(main())


def test_the_whole_stream_limit_counts_from_asking_the_instance_not_the_cold_start(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        clock = FakeClock()
        async with tokens(asyncio.Event()) as port:  # `a`, then nothing: the gate stays shut
            streaming, route, capacity = _setup(tmp_path, instance("s1", port, host="127.0.0.1"))
            streaming.clock, streaming.max_duration_s = clock, 10.0
            capacity.on_acquire = lambda: clock.advance(20.0)  # longer than the limit
            streamed = await streaming.invoke(route, _request())
            assert await anext(streamed.parts) == b"a"  # 20 s after the request, 0 after asking
            clock.advance(10.0)
            with pytest.raises(ModelStreamError) as info:
                await anext(streamed.parts)
            assert info.value.error_code == "ModelInvocationTimeExceeded"
            await _settle()
            assert capacity.released == ["s1"]  # the instance goes back to the pool

    asyncio.run(main())
