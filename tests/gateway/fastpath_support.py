"""A gateway protocol (gateway/fastpath.py) on a fake socket, over a runtime API whose
instances are fakes: what a test feeds in as bytes and what the protocol wrote back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from modelhost.fleet.dataplane.plane import DataPlane, Limits
from modelhost.gateway.asgi import Receive, Scope, Send
from modelhost.gateway.auth.guard import Guard
from modelhost.gateway.fastpath import FastInvoke, gateway_protocol
from modelhost.gateway.runtime_api import RuntimeAPI
from modelhost.gateway.server import http_protocol
from modelhost.routing.table import EndpointRoute, RoutingTable, VariantRoute
from modelhost.settings import Settings
from modelhost.telemetry.metrics import InvocationMetrics
from modelhost.testing.dataplane import FakeHealth, FakeRoutes, FakeTransport, Handler, instance

MAX_PAYLOAD_BYTES = 1000
HEAD_S, BODY_S = 1.0, 2.0


class Socket:
    """The transport side of one connection: what was written, whether it closed."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def answers(self) -> list[tuple[int, dict[bytes, bytes], bytes]]:
        """The HTTP answers written so far, parsed (Content-Length framed)."""
        out = []
        rest = self.written
        while rest:
            head, _, rest = rest.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ")[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b": ")
                headers[name.lower()] = value
            length = int(headers.get(b"content-length", b"0"))
            out.append((status, headers, rest[:length]))
            rest = rest[length:]
        return out


class AsgiSeen:
    """The ASGI application behind the fast path: the guard then the runtime API (what
    Gateway.dispatch does for invocations), recording the paths it was given."""

    def __init__(self, guard: Guard, runtime: RuntimeAPI) -> None:
        self.guard = guard
        self.runtime = runtime
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.paths.append(scope["path"])
        await self.guard(scope, receive, send, self.runtime)


def runtime_api(tmp_path: Path, handler: Handler) -> RuntimeAPI:
    """A runtime API for endpoint `ep` with one fake instance answering `handler`."""
    route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (instance("a", 1),)),))
    limits = Limits(5.0, MAX_PAYLOAD_BYTES, 8, tmp_path)
    plane = DataPlane(
        FakeRoutes(RoutingTable({"ep": route})),
        FakeHealth(),
        FakeTransport({("10.0.0.1", 1): handler}),  # type: ignore[dict-item]
        lambda: 0.0,
        lambda _name: None,
        InvocationMetrics(),
        limits,
        lambda e, _path: f"arn:log:{e}",
    )
    return RuntimeAPI(plane, MAX_PAYLOAD_BYTES, "123456789012")


def connect(
    tmp_path: Path, handler: Handler, *, fast: bool = True, served: bool = False, **settings: Any
) -> tuple[asyncio.Protocol, Socket, AsgiSeen]:
    """A connection to a gateway protocol (on the running loop), fast path on or off;
    `served`: the class `modelhost serve` chooses from the settings (server.http_protocol)."""
    config = Settings(home=tmp_path, max_payload_bytes=MAX_PAYLOAD_BYTES, **settings)
    runtime = runtime_api(tmp_path, handler)
    guard = Guard(config, None)
    app = AsgiSeen(guard, runtime)
    invoke = FastInvoke(config, runtime, guard, lambda _name: None) if fast or served else None
    if served:
        assert invoke is not None
        cls = http_protocol(config, invoke)
    else:
        cls = gateway_protocol(invoke, 4096, HEAD_S, BODY_S)
    uv_config = uvicorn.Config(app=app, log_level="warning", limit_concurrency=100)
    protocol = cls(config=uv_config, server_state=ServerState(), app_state={})  # type: ignore[call-arg]
    sock = Socket()
    protocol.connection_made(sock)  # type: ignore[arg-type]
    return protocol, sock, app


def invocation(body: bytes = b"1,2", endpoint: str = "ep", extra: bytes = b"") -> bytes:
    return (
        b"POST /endpoints/" + endpoint.encode() + b"/invocations HTTP/1.1\r\n"
        b"host: x\r\ncontent-type: text/csv\r\n" + extra + b"content-length: %d\r\n\r\n" % len(body)
    ) + body


async def settle(sock: Socket, answers: int, timeout_s: float = 10.0) -> None:
    """Wait until `answers` answers were written (the loop runs the request tasks)."""
    async with asyncio.timeout(timeout_s):
        while len(sock.answers()) < answers:
            await asyncio.sleep(0.001)
