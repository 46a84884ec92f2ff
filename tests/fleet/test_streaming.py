"""Streamed invocations: the streaming client and the data plane's relay, against a
scripted HTTP server in this process (no instance processes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from modelhost.errors import ModelError, ModelStreamError
from modelhost.fleet.dataplane.plane import DataPlane, Invocation, Limits
from modelhost.fleet.dataplane.streaming import StreamingPlane
from modelhost.fleet.http1 import InstanceDisconnected
from modelhost.fleet.http1_stream import StreamTimeExceeded, open_stream, part_wait_s
from modelhost.fleet.local import free_port
from modelhost.resources.capture import CaptureConfig
from modelhost.routing.table import EndpointRoute, RoutingTable, VariantRoute
from modelhost.telemetry.capture import CaptureBuffer
from modelhost.telemetry.metrics import InvocationMetrics
from modelhost.testing.dataplane import FakeHealth, FakeRoutes, FakeTransport, instance

Script = Callable[[asyncio.StreamWriter], Awaitable[None]]


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[int]:
    """A server on a loopback port answering every request with `script`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
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


def test_chunks_arrive_as_the_server_writes_them() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + _chunk(b"first"))
            await gate.wait()  # the last chunk waits for the first to be read
            w.write(_chunk(b"last") + _chunk(b""))

        async with scripted(script) as port:
            answer = await open_stream(port, b"/invocations", [], b"x", 30.0)
            assert answer.status == 200 and answer.headers[b"content-type"] == b"text/plain"
            parts = answer.parts()
            assert await anext(parts) == b"first"
            gate.set()
            assert [p async for p in parts] == [b"last"]
            answer.close()

    asyncio.run(main())


def test_a_content_length_answer_is_one_part_and_a_break_is_disconnected() -> None:
    async def main() -> None:
        async def whole(w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nab")
            await w.drain()
            w.write(b"cdef")

        async with scripted(whole) as port:
            answer = await open_stream(port, b"/invocations", [], b"x", 30.0)
            assert [p async for p in answer.parts()] == [b"abcdef"]

        async def broken(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + _chunk(b"first"))

        async with scripted(broken) as port:
            answer = await open_stream(port, b"/invocations", [], b"x", 30.0)
            parts = answer.parts()
            assert await anext(parts) == b"first"
            with pytest.raises(InstanceDisconnected):
                await anext(parts)

    asyncio.run(main())


def _plane(tmp_path: Path, route: EndpointRoute, timeout_s: float) -> tuple[DataPlane, FakeHealth]:
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


def _request() -> Invocation:
    forward = [(b"content-type", b"text/plain")]
    return Invocation("ep", dict(forward), forward, b"x", None, None, 0.0, "req-1")


def test_the_plane_relays_retries_and_releases(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + _chunk(b"a") + _chunk(b"b") + _chunk(b""))

        async with scripted(script) as port:
            down = instance("down", free_port(), host="127.0.0.1")  # nothing listens
            up = instance("up", port, host="127.0.0.1")
            up.outstanding = 1  # `down` is picked first
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (down, up)),))
            plane, health = _plane(tmp_path, route, 30.0)
            streamed = await StreamingPlane(plane).invoke(route, _request())
            assert (streamed.variant, streamed.content_type) == ("AllTraffic", b"text/plain")
            assert up.outstanding == 2  # the stream counts until it ends
            assert [p async for p in streamed.parts] == [b"a", b"b"]
            assert up.outstanding == 1 and down.outstanding == 0
            assert health.reported == [("ep", "down")]

    asyncio.run(main())


def test_a_silent_model_times_out_mid_stream(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + _chunk(b"a"))
            await asyncio.Event().wait()  # never another part

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = _plane(tmp_path, route, 0.3)
            streamed = await StreamingPlane(plane).invoke(route, _request())
            parts = streamed.parts
            assert await anext(parts) == b"a"
            with pytest.raises(ModelStreamError) as info:
                await anext(parts)
            assert info.value.error_code == "ModelInvocationTimeExceeded"
            assert a.outstanding == 0

    asyncio.run(main())


def test_an_error_status_is_model_error_before_the_stream(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.1 422 Unprocessable\r\ncontent-length: 9\r\n\r\nbad input")

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = _plane(tmp_path, route, 30.0)
            with pytest.raises(ModelError) as info:
                await StreamingPlane(plane).invoke(route, _request())
            assert info.value.original_status_code == 422
            assert info.value.original_message == "bad input"
            assert a.outstanding == 0

    asyncio.run(main())


def test_closing_ends_a_waiting_reader(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + _chunk(b"a"))
            await asyncio.Event().wait()

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = _plane(tmp_path, route, 30.0)
            streamed = await StreamingPlane(plane).invoke(route, _request())
            assert await anext(streamed.parts) == b"a"
            waiting = asyncio.ensure_future(anext(streamed.parts))
            await asyncio.sleep(0)
            streamed.close()  # the client went away
            with pytest.raises(StopAsyncIteration):
                await waiting
            assert a.outstanding == 0

    asyncio.run(main())


def test_a_captured_stream_keeps_the_whole_answer(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + _chunk(b"a") + _chunk(b"b") + _chunk(b""))

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            capture = CaptureConfig(100, str(tmp_path), True, True)
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),), capture=capture)
            plane, _ = _plane(tmp_path, route, 30.0)
            streamed = await StreamingPlane(plane).invoke(route, _request())
            assert [p async for p in streamed.parts] == [b"a", b"b"]
            assert plane.capture is not None
            [captured] = plane.capture.items
            assert (captured.input_body, captured.output_body) == (b"x", b"ab")
            assert captured.output_type == b"text/plain"

    asyncio.run(main())


TRAILED = CHUNKED[:-2] + b"trailer: x-modelhost-stream-error\r\n\r\n"


def test_an_error_trailer_ends_the_stream_with_the_models_error(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(TRAILED + _chunk(b"a") + _chunk(b"b"))
            w.write(b"0\r\nx-modelhost-stream-error: ValueError: boom%0ATraceback\r\n\r\n")

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = _plane(tmp_path, route, 30.0)
            streamed = await StreamingPlane(plane).invoke(route, _request())
            got = []
            with pytest.raises(ModelStreamError) as info:
                async for part in streamed.parts:
                    got.append(part)
            assert got == [b"a", b"b"]
            assert info.value.error_code == "StreamBroken"
            assert "ValueError: boom\nTraceback" in info.value.message
            assert a.outstanding == 0
            # Counted as the variant's 5XX error, as a failed InvokeEndpoint is.
            assert plane.metrics.series("ep", "AllTraffic").counts.errors_5xx == 1

    asyncio.run(main())


def test_a_normal_end_and_other_trailers_are_no_error(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(TRAILED + _chunk(b"a") + b"0\r\nx-other: 1\r\n\r\n")

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = _plane(tmp_path, route, 30.0)
            streamed = await StreamingPlane(plane).invoke(route, _request())
            assert [p async for p in streamed.parts] == [b"a"]
            assert plane.metrics.series("ep", "AllTraffic").counts.errors_5xx == 0

    asyncio.run(main())


def test_a_break_without_the_trailer_is_stream_broken(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + _chunk(b"a"))  # then the connection closes

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, health = _plane(tmp_path, route, 30.0)
            for dead, said in ((False, "closed the connection"), (True, "a exited mid-stream")):
                if dead:
                    health.dead.add("a")
                streamed = await StreamingPlane(plane).invoke(route, _request())
                with pytest.raises(ModelStreamError) as info:
                    async for _ in streamed.parts:
                        pass
                assert info.value.error_code == "StreamBroken"
                assert said in info.value.message

    asyncio.run(main())


def test_the_wait_for_a_part_is_cut_to_what_is_left_of_the_stream() -> None:
    assert part_wait_s(60.0, None, 1e9) == 60.0  # no whole-stream limit
    assert part_wait_s(60.0, 100.0, 10.0) == 60.0
    assert part_wait_s(60.0, 100.0, 70.0) == 30.0
    assert part_wait_s(60.0, 100.0, 100.0) is None
    assert part_wait_s(60.0, 100.0, 130.0) is None


def test_an_answer_past_its_deadline_ends_unless_the_instance_finished() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + _chunk(b"a") + _chunk(b"b"))
            await gate.wait()
            w.write(_chunk(b"c") + _chunk(b""))

        now = [0.0]
        async with scripted(script) as port:
            answer = await open_stream(port, b"/invocations", [], b"x", 30.0)
            answer.clock, answer.deadline_s = (lambda: now[0]), 10.0
            parts = answer.parts()
            assert await anext(parts) == b"a"
            now[0] = 10.0  # the time is up, the instance is still answering: no more parts
            with pytest.raises(StreamTimeExceeded):
                await anext(parts)
            answer.close()

            finished = await open_stream(port, b"/invocations", [], b"x", 30.0)
            finished.clock, finished.deadline_s = (lambda: now[0]), 20.0
            gate.set()
            first = finished.parts()
            assert await anext(first) == b"a"
            while not finished._stream.done:  # the instance has sent its whole answer
                await asyncio.sleep(0.01)
            now[0] = 25.0  # read late, but the instance finished: handed out whole
            assert [p async for p in first] == [b"b", b"c"]

    asyncio.run(main())


def test_a_stream_that_outlasts_the_whole_stream_limit_is_cut_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        cut = asyncio.Event()

        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED)
            try:
                while True:  # a part every 20 ms, forever: never silent for the per-part limit
                    w.write(_chunk(b"tick"))
                    await w.drain()
                    await asyncio.sleep(0.02)
            except ConnectionError:
                cut.set()  # the gateway closed the connection: the model is told to stop

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = _plane(tmp_path, route, 30.0)
            streaming = StreamingPlane(plane, max_duration_s=0.5)
            streamed = await streaming.invoke(route, _request())
            got = []
            with pytest.raises(ModelStreamError) as info:
                async for part in streamed.parts:
                    got.append(part)
            assert got and set(got) == {b"tick"}  # the parts before the limit were relayed
            assert info.value.error_code == "ModelInvocationTimeExceeded"
            assert "did not complete sending the inference response" in info.value.message
            assert "0.5 s for the whole stream" in info.value.message
            assert a.outstanding == 0
            assert plane.metrics.series("ep", "AllTraffic").counts.errors_5xx == 1
            await asyncio.wait_for(cut.wait(), 30)
            # The same instance answers the next stream.
            streaming.max_duration_s = 0
            again = await streaming.invoke(route, _request())
            assert await anext(again.parts) == b"tick"
            again.close()

    with caplog.at_level(logging.WARNING, logger="modelhost.gateway"):
        asyncio.run(main())
    assert any("allotted time" in r.getMessage() for r in caplog.records)
