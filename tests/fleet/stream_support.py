"""A scripted HTTP server in this process and a data plane over fake routes, for the
streaming client and relay tests (no instance processes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelhost.errors import ModelStreamError
from modelhost.fleet.dataplane.plane import DataPlane, Invocation, Limits
from modelhost.fleet.dataplane.streaming import StreamingPlane
from modelhost.fleet.instance import Instance
from modelhost.routing.table import EndpointRoute, RoutingTable, VariantRoute
from modelhost.telemetry.capture import CaptureBuffer
from modelhost.telemetry.metrics import InvocationMetrics
from modelhost.testing.dataplane import FakeHealth, FakeRoutes, FakeTransport, instance

Script = Callable[[asyncio.StreamWriter], Awaitable[None]]


def chunk(data: bytes) -> bytes:
    """`data` as one HTTP chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"


@asynccontextmanager
async def scripted(script: Script, heads: list[bytes] | None = None) -> AsyncIterator[int]:
    """A server on a loopback port answering every request with `script` (the requests'
    heads appended to `heads`)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if heads is not None:
            heads.append(head)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        try:
            await script(writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def plane_for(
    tmp_path: Path, route: EndpointRoute, timeout_s: float
) -> tuple[DataPlane, FakeHealth]:
    """A data plane serving `route` (invocation timeout `timeout_s`) and its fake health."""
    health = FakeHealth()
    limits = Limits(timeout_s, 1000, 8, tmp_path)
    plane = DataPlane(
        FakeRoutes(RoutingTable({route.name: route})),
        health,
        FakeTransport(),
        lambda: 0.0,
        lambda _name: None,
        InvocationMetrics(),
        limits,
        lambda e, _path: f"arn:log:{e}",
        capture=CaptureBuffer(10),
    )
    return plane, health


def request() -> Invocation:
    """A text/plain invocation of endpoint `ep`."""
    forward = [(b"content-type", b"text/plain")]
    return Invocation("ep", dict(forward), forward, b"x", None, None, 0.0, "req-1")


@dataclass
class StreamFailure:
    """What `parts_until_error` saw, and the plane and instance it streamed through."""

    parts: list[bytes]
    error: ModelStreamError
    plane: DataPlane
    instance: Instance


async def parts_until_error(tmp_path: Path, port: int) -> StreamFailure:
    """Stream `request()` from the one instance on `port`: the parts read before the
    stream failed, and the `ModelStreamError` it failed with (the test fails if none)."""
    a = instance("a", port, host="127.0.0.1")
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
    plane, _ = plane_for(tmp_path, route, 30.0)
    streamed = await StreamingPlane(plane).invoke(route, request())
    got: list[bytes] = []
    with pytest.raises(ModelStreamError) as info:
        async for part in streamed.parts:
            got.append(part)
    return StreamFailure(got, info.value, plane, a)
