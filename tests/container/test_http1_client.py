"""The gateway's lean HTTP/1.1 client (fleet/http1.py) against small raw servers.

Lives beside the container tests because it speaks the container contract; each case
is a response shape a BYOC server may send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from modelhost.fleet.http1 import HTTP1Pool, InstanceDisconnected, InstanceUnreachable
from modelhost.fleet.local import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


def run(handler: Handler, client: Callable[[HTTP1Pool, int], Awaitable[object]]) -> object:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            # Closed however the handler ends (including cancellation at loop shutdown),
            # so no transport outlives the test.
            writer.close()

    async def main() -> object:
        server = await asyncio.start_server(closing, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = HTTP1Pool()
        try:
            return await client(pool, port)
        finally:
            pool.close()
            server.close()
            await server.wait_closed()
            await asyncio.sleep(0.05)  # let handlers see their connections close

    return asyncio.run(main())


def test_keep_alive_reuses_one_connection_and_forwards_headers() -> None:
    connections = []
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while True:
            try:
                request = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(request)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 3\r\n\r\n0.5"
            )
            await writer.drain()
        writer.close()

    async def client(pool: HTTP1Pool, port: int) -> object:
        headers = [(b"content-type", b"text/csv"), (b"accept", b"text/csv")]
        return [
            await pool.request(("127.0.0.1", port), b"POST", b"/invocations", headers, b"1,2", 5)
            for _ in range(3)
        ]

    results = run(handler, client)
    assert results == [(200, {b"content-type": b"text/csv", b"content-length": b"3"}, b"0.5")] * 3
    assert len(connections) == 1
    assert seen[0].startswith(b"POST /invocations HTTP/1.1\r\n")
    assert b"\r\ncontent-type: text/csv\r\n" in seen[0] and seen[0].endswith(b"\r\n\r\n1,2")


def test_chunked_and_close_delimited_bodies() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.0 201 Created\r\nContent-Type: text/plain\r\n\r\nuntil close",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(answers.pop(0))
        await writer.drain()
        writer.close()  # as announced (Connection: close) or to end the body (HTTP/1.0)

    async def client(pool: HTTP1Pool, port: int) -> object:
        first = await pool.request(("127.0.0.1", port), b"POST", b"/invocations", [], b"x", 5)
        second = await pool.request(("127.0.0.1", port), b"POST", b"/invocations", [], b"x", 5)
        return first[0], first[2], second[0], second[2]

    assert run(handler, client) == (200, b"abcde", 201, b"until close")


def test_errors_are_classified() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        if request.endswith(b"hang"):
            await asyncio.sleep(1)
        writer.close()  # no answer at all

    async def client(pool: HTTP1Pool, port: int) -> object:
        with pytest.raises(InstanceDisconnected):
            await pool.request(("127.0.0.1", port), b"POST", b"/invocations", [], b"x", 5)
        with pytest.raises(TimeoutError):
            await pool.request(("127.0.0.1", port), b"POST", b"/invocations", [], b"hang", 0.2)
        with pytest.raises(InstanceUnreachable):
            await pool.request(("127.0.0.1", free_port()), b"POST", b"/invocations", [], b"x", 5)
        return True

    assert run(handler, client) is True


def test_timeouts_are_swept_per_request_among_many_in_flight() -> None:
    """One sweep checks every request's deadline: the slow one times out, the others
    (with longer timeouts, in flight at the same time) are answered, and nothing is
    left watched afterwards."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await _read_request(reader)
            if request.endswith(b"hang"):
                await asyncio.sleep(2)
            elif request.endswith(b"slowish"):
                await asyncio.sleep(0.3)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    async def client(pool: HTTP1Pool, port: int) -> object:
        address = ("127.0.0.1", port)

        async def one(body: bytes, timeout_s: float) -> object:
            try:
                return (await pool.request(address, b"POST", b"/i", [], body, timeout_s))[2]
            except TimeoutError:
                return "timeout"

        results = await asyncio.gather(
            one(b"slowish", 30), one(b"hang", 0.2), one(b"x", 30), one(b"slowish", 5)
        )
        deadlines = pool._deadlines
        assert deadlines is not None and not deadlines.busy
        return results

    assert run(handler, client) == [b"ok", "timeout", b"ok", b"ok"]


def test_a_stream_ended_by_its_error_trailer_is_a_500_naming_the_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for last in (
            b"0\r\nx-modelhost-stream-error: ValueError: boom%0Atrace\r\n\r\n",
            b"0\r\n\r\n",
        ):
            await _read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n"
                b"trailer: x-modelhost-stream-error\r\n\r\n3\r\none\r\n" + last
            )

    async def client(pool: HTTP1Pool, port: int) -> object:
        address = ("127.0.0.1", port)
        failed = await pool.request(address, b"POST", b"/invocations", [], b"x", 5)
        # The answer ended properly: the same keep-alive connection serves the next one.
        ok = await pool.request(address, b"POST", b"/invocations", [], b"x", 5)
        return failed, ok

    failed, ok = run(handler, client)  # type: ignore[misc]
    assert failed[0] == 500
    assert failed[2] == b"The model broke off its answer midway: ValueError: boom\ntrace"
    assert b"x-modelhost-stream-error" not in failed[1]
    assert ok[0] == 200 and ok[2] == b"one"
