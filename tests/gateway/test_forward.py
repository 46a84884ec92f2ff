"""The follower's relay to the leader (`gateway.forward`), against a scripted leader in this
process: answers go on as they arrive, a break between event-stream messages ends with
InternalStreamFailure, a client that leaves closes the leader's connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from botocore.eventstream import EventStreamBuffer

from modelhost.gateway import eventstream
from modelhost.gateway.forward import LeaderForwarder, _Frames

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@asynccontextmanager
async def leader(script: Script) -> AsyncIterator[str]:
    """A leader on a loopback port answering every request with `script`; its handlers are
    ended on exit."""
    handlers: list[asyncio.Task[Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            size = int(head.lower().split(b"content-length: ")[1].split(b"\r")[0])
            await reader.readexactly(size)
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


class Client:
    """The follower's client side: a recording `send`, and a `receive` that reports a
    disconnect once `leave()` is called."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.left = asyncio.Event()
        self._body = True

    async def receive(self) -> dict[str, Any]:
        if self._body:
            self._body = False
            return {"type": "http.request", "body": b"x", "more_body": False}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self.arrived.set()

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/endpoints/e/invocations-response-stream",
    "headers": [(b"host", b"follower")],
}


def _events(data: bytes) -> list[tuple[str, bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    out = []
    for message in buffer:
        headers = message.headers
        kind = headers.get(":event-type") or headers.get(":exception-type")
        out.append((str(kind), bytes(message.payload)))
    return out


def test_parts_go_on_as_the_leader_sends_them() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(STREAM_HEAD + _chunk(eventstream.event("PayloadPart", b"first")))
            await gate.wait()  # the rest waits until the first part was relayed
            w.write(_chunk(eventstream.event("PayloadPart", b"last")) + _chunk(b""))

        async with leader(script) as url:
            forwarder, client = LeaderForwarder(30.0, 1024), Client()
            relay = asyncio.ensure_future(forwarder(url, SCOPE, client.receive, client.send))
            while _events(client.body()) != [("PayloadPart", b"first")]:
                client.arrived.clear()
                await asyncio.wait_for(client.arrived.wait(), 30)
            gate.set()
            await asyncio.wait_for(relay, 30)
            await forwarder.close()
        assert client.sent[0]["status"] == 200
        assert (b"content-type", b"application/vnd.amazon.eventstream") in client.sent[0]["headers"]
        assert _events(client.body()) == [("PayloadPart", b"first"), ("PayloadPart", b"last")]
        assert client.sent[-1]["more_body"] is False

    asyncio.run(main())


def test_a_break_between_messages_ends_with_internal_stream_failure() -> None:
    async def main() -> None:
        async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(STREAM_HEAD + _chunk(eventstream.event("PayloadPart", b"first")))
            await w.drain()  # then the leader's connection breaks

        async with leader(script) as url:
            forwarder, client = LeaderForwarder(30.0, 1024), Client()
            await asyncio.wait_for(forwarder(url, SCOPE, client.receive, client.send), 30)
            await forwarder.close()
        events = _events(client.body())
        assert events[0] == ("PayloadPart", b"first")
        assert events[1][0] == "InternalStreamFailure"
        assert b"broke off" in events[1][1]

    asyncio.run(main())


def test_a_client_that_leaves_closes_the_leaders_connection() -> None:
    async def main() -> None:
        closed = asyncio.Event()

        async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(STREAM_HEAD + _chunk(eventstream.event("PayloadPart", b"first")))
            await r.read()  # until the follower closes the connection
            closed.set()

        async with leader(script) as url:
            forwarder, client = LeaderForwarder(30.0, 1024), Client()
            relay = asyncio.ensure_future(forwarder(url, SCOPE, client.receive, client.send))
            while not client.body():
                client.arrived.clear()
                await asyncio.wait_for(client.arrived.wait(), 30)
            client.left.set()
            await asyncio.wait_for(relay, 30)  # ends without waiting for the leader
            await asyncio.wait_for(closed.wait(), 30)
            await forwarder.close()
        assert client.sent[-1]["more_body"] is True  # never finished

    asyncio.run(main())


def test_frames_track_message_boundaries_across_reads() -> None:
    one, two = eventstream.event("PayloadPart", b"a" * 10), eventstream.event("PayloadPart", b"")
    data = one + two
    for cut in range(len(data) + 1):
        frames = _Frames()
        frames.feed(data[:cut])
        expect = cut in (0, len(one), len(data))
        assert frames.at_boundary is expect, cut
        frames.feed(data[cut:])
        assert frames.at_boundary
