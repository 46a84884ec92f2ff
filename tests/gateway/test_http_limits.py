"""The slow-client deadlines of the gateway's HTTP protocol, driven by a fake clock and a
fake transport (no sockets): what is cut off when, and what is left alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from modelhost.errors import IncompleteBody
from modelhost.gateway.asgi import read_body
from modelhost.gateway.http_limits import BoundedHttpToolsProtocol, bounded_protocol

HEAD_S, BODY_S = 1.0, 2.0


class FakeLoop:
    """Just what the protocol asks of its loop, on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.later: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        self.later.append((self.now + delay_s, callback))

    def create_task(self, coro: Coroutine[Any, Any, None], **_: Any) -> FakeTask:
        coro.close()  # the ASGI app does not run here
        return FakeTask()


class FakeTask:
    def add_done_callback(self, _: Callable[[Any], None]) -> None:
        pass


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    pass


def _connection() -> tuple[BoundedHttpToolsProtocol, FakeTransport, FakeLoop]:
    loop = FakeLoop()
    cls = bounded_protocol(4096, HEAD_S, BODY_S)
    config = uvicorn.Config(app=_app, log_level="warning")
    protocol = cls(config=config, server_state=ServerState(), app_state={}, _loop=loop)  # type: ignore[call-arg]
    assert isinstance(protocol, BoundedHttpToolsProtocol)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, loop


def test_a_connection_that_never_speaks_is_closed_without_an_answer() -> None:
    protocol, transport, _ = _connection()
    protocol.check_deadlines(HEAD_S - 0.01)
    assert not transport.closed
    protocol.check_deadlines(HEAD_S)
    assert transport.closed and transport.written == b""


def test_a_dribbled_head_gets_408() -> None:
    protocol, transport, loop = _connection()
    protocol.data_received(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    loop.now = 0.9
    protocol.data_received(b"a")  # progress does not move the deadline
    protocol.check_deadlines(HEAD_S)
    assert transport.closed
    assert transport.written.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"request head" in transport.written


def test_a_dribbled_body_gets_408_unless_the_server_stopped_reading() -> None:
    protocol, transport, loop = _connection()
    loop.now = 0.5
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12")
    protocol.check_deadlines(0.5 + BODY_S - 0.01)
    assert not transport.closed
    protocol.flow.pause_reading()  # backpressure: the gateway is not reading
    protocol.check_deadlines(0.5 + BODY_S)
    assert not transport.closed
    protocol.flow.resume_reading()
    protocol.check_deadlines(0.5 + 2 * BODY_S)
    assert transport.closed and b"request body" in transport.written


def test_complete_requests_and_kept_alive_connections() -> None:
    protocol, transport, loop = _connection()
    protocol.data_received(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
    protocol.check_deadlines(1000.0)  # a request being served has no deadline
    assert not transport.closed
    # The next request on the kept-alive connection gets its own head deadline.
    loop.now = 1000.0
    protocol.cycle.response_complete = True
    protocol.data_received(b"GET /p")
    protocol.check_deadlines(1000.0 + HEAD_S)
    assert transport.closed and transport.written.startswith(b"HTTP/1.1 408 ")


def test_one_sweep_per_server_checks_every_connection() -> None:
    _, transport, loop = _connection()
    assert len(loop.later) == 1  # scheduled by the first connection
    when, sweep = loop.later.pop()
    assert when <= HEAD_S / 4 + 1e-9
    loop.now = HEAD_S
    sweep()
    assert transport.closed
    # The connection set still holds it (connection_lost is the transport's business):
    # the sweep goes on while the server has connections.
    assert len(loop.later) == 1


def test_the_part_of_a_body_that_came_is_never_processed() -> None:
    """What the application sees after a cut-off: a disconnect in the middle of the body."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b"1,2,", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    with pytest.raises(IncompleteBody):
        asyncio.run(read_body(receive, 1024))
