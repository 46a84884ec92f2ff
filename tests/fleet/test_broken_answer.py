"""An answer the instance broke off after it started (a streaming model failing midway):
the pool says so, and the data plane makes it the model's error, never resent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelhost.errors import ModelError, ServiceUnavailable
from modelhost.fleet.dataplane.core import Invoker, Sent
from modelhost.fleet.http1 import HTTP1Pool, InstanceDisconnected
from modelhost.fleet.instance import Instance
from modelhost.routing.table import Target
from modelhost.testing.dataplane import FakeHealth, FakeTransport, Handler, Reply, instance


def _send(transport: FakeTransport, health: FakeHealth, target: Instance) -> Sent:
    core = Invoker(transport, health, lambda: 0.0, 5.0, lambda e, _path: f"arn:log:{e}")

    def pick(tried: frozenset[str]) -> Target | None:
        return None if target.instance_id in tried else target

    async def attempt(inst: Instance) -> Sent:
        status, headers, body = await core.post(inst, b"/invocations", [], b"x")
        return Sent(status, headers, body, inst, 0.0)

    return asyncio.run(core.run("ep", "AllTraffic", pick, attempt))


def _broken() -> Handler:
    async def handler(*_args: Any) -> Reply:
        raise InstanceDisconnected("the instance broke off its answer", answered=True)

    return handler


def test_a_live_instance_that_broke_off_its_answer_is_a_model_error() -> None:
    a = instance("a", 1)
    transport = FakeTransport({a.address: _broken()})
    health = FakeHealth()
    with pytest.raises(ModelError) as info:
        _send(transport, health, a)
    assert info.value.original_status_code == 500
    assert "broke off its answer" in info.value.original_message
    assert len(transport.calls) == 1  # it ran: never resent
    assert health.reported == []


def test_a_dead_instance_that_broke_off_is_service_unavailable() -> None:
    a = instance("a", 1)
    health = FakeHealth(dead={"a"})
    with pytest.raises(ServiceUnavailable, match="stopped while serving"):
        _send(FakeTransport({a.address: _broken()}), health, a)
    assert health.reported == [("ep", "a")]


def test_the_pool_tells_a_broken_answer_from_a_closed_connection() -> None:
    async def main() -> tuple[bool, bool]:
        async def head_then_close(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await _r.readuntil(b"\r\n\r\nx")
            w.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n")
            await w.drain()
            w.close()

        async def close_at_once(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await _r.readuntil(b"\r\n\r\nx")
            w.close()

        answered = []
        for script in (head_then_close, close_at_once):
            server = await asyncio.start_server(script, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            pool = HTTP1Pool()
            try:
                with pytest.raises(InstanceDisconnected) as info:
                    await pool.request(("127.0.0.1", port), b"POST", b"/invocations", [], b"x", 5)
                answered.append(info.value.answered)
            finally:
                pool.close()
                server.close()
                await server.wait_closed()
        return answered[0], answered[1]

    assert asyncio.run(main()) == (True, False)
