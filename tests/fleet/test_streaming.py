"""Streamed invocations: the streaming client and the data plane's relay, against a
scripted HTTP server in this process (no instance processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelhost.errors import ModelError, ModelStreamError
from modelhost.fleet.dataplane.streaming import StreamingPlane
from modelhost.fleet.http1 import InstanceDisconnected
from modelhost.fleet.http1_stream import open_stream
from modelhost.fleet.local import free_port
from modelhost.resources.capture import CaptureConfig
from modelhost.routing.table import EndpointRoute, VariantRoute
from modelhost.testing.dataplane import instance
from tests.fleet.stream_support import (
    CHUNKED,
    chunk,
    parts_until_error,
    plane_for,
    request,
    scripted,
)


def test_chunks_arrive_as_the_server_writes_them() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + chunk(b"first"))
            await gate.wait()  # the last chunk waits for the first to be read
            w.write(chunk(b"last") + chunk(b""))

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
            w.write(CHUNKED + chunk(b"first"))

        async with scripted(broken) as port:
            answer = await open_stream(port, b"/invocations", [], b"x", 30.0)
            parts = answer.parts()
            assert await anext(parts) == b"first"
            with pytest.raises(InstanceDisconnected):
                await anext(parts)

    asyncio.run(main())


def test_the_plane_relays_retries_and_releases(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + chunk(b"a") + chunk(b"b") + chunk(b""))

        async with scripted(script) as port:
            down = instance("down", free_port(), host="127.0.0.1")  # nothing listens
            up = instance("up", port, host="127.0.0.1")
            up.outstanding = 1  # `down` is picked first
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (down, up)),))
            plane, health = plane_for(tmp_path, route, 30.0)
            streamed = await StreamingPlane(plane).invoke(route, request())
            assert (streamed.variant, streamed.content_type) == ("AllTraffic", b"text/plain")
            assert up.outstanding == 2  # the stream counts until it ends
            assert [p async for p in streamed.parts] == [b"a", b"b"]
            assert up.outstanding == 1 and down.outstanding == 0
            assert health.reported == [("ep", "down")]

    asyncio.run(main())


def test_a_silent_model_times_out_mid_stream(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + chunk(b"a"))
            await asyncio.Event().wait()  # never another part

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = plane_for(tmp_path, route, 0.3)
            streamed = await StreamingPlane(plane).invoke(route, request())
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
            plane, _ = plane_for(tmp_path, route, 30.0)
            with pytest.raises(ModelError) as info:
                await StreamingPlane(plane).invoke(route, request())
            assert info.value.original_status_code == 422
            assert info.value.original_message == "bad input"
            assert a.outstanding == 0

    asyncio.run(main())


def test_closing_ends_a_waiting_reader(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + chunk(b"a"))
            await asyncio.Event().wait()

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = plane_for(tmp_path, route, 30.0)
            streamed = await StreamingPlane(plane).invoke(route, request())
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
            w.write(CHUNKED + chunk(b"a") + chunk(b"b") + chunk(b""))

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            capture = CaptureConfig(100, str(tmp_path), True, True)
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),), capture=capture)
            plane, _ = plane_for(tmp_path, route, 30.0)
            streamed = await StreamingPlane(plane).invoke(route, request())
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
            w.write(TRAILED + chunk(b"a") + chunk(b"b"))
            w.write(b"0\r\nx-modelhost-stream-error: ValueError: boom%0ATraceback\r\n\r\n")

        async with scripted(script) as port:
            failure = await parts_until_error(tmp_path, port)
            got, error, a, plane = failure.parts, failure.error, failure.instance, failure.plane
            assert got == [b"a", b"b"]
            assert error.error_code == "StreamBroken"
            assert "ValueError: boom\nTraceback" in error.message
            assert a.outstanding == 0
            # Counted as the variant's 5XX error, as a failed InvokeEndpoint is.
            assert plane.metrics.series("ep", "AllTraffic").counts.errors_5xx == 1

    asyncio.run(main())


def test_a_normal_end_and_other_trailers_are_no_error(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(TRAILED + chunk(b"a") + b"0\r\nx-other: 1\r\n\r\n")

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = plane_for(tmp_path, route, 30.0)
            streamed = await StreamingPlane(plane).invoke(route, request())
            assert [p async for p in streamed.parts] == [b"a"]
            assert plane.metrics.series("ep", "AllTraffic").counts.errors_5xx == 0

    asyncio.run(main())


def test_a_break_without_the_trailer_is_stream_broken(tmp_path: Path) -> None:
    async def main() -> None:
        async def script(w: asyncio.StreamWriter) -> None:
            w.write(CHUNKED + chunk(b"a"))  # then the connection closes

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, health = plane_for(tmp_path, route, 30.0)
            for dead, said in ((False, "closed the connection"), (True, "a exited mid-stream")):
                if dead:
                    health.dead.add("a")
                streamed = await StreamingPlane(plane).invoke(route, request())
                with pytest.raises(ModelStreamError) as info:
                    async for _ in streamed.parts:
                        pass
                assert info.value.error_code == "StreamBroken"
                assert said in info.value.message

    asyncio.run(main())
