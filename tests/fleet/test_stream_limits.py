"""The limits and signals of a streamed answer on the gateway's side: the whole-stream time
limit (`stream_max_duration_s`) and the framed answers of instances on uvicorn
(container/stream_frames.py), against a scripted HTTP server in this process."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from modelhost.container.stream_frames import DATA, ERROR, frame
from modelhost.errors import ModelStreamError
from modelhost.fleet.dataplane.streaming import StreamingPlane
from modelhost.fleet.http1_stream import StreamTimeExceeded, open_stream, part_wait_s
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
            w.write(CHUNKED + chunk(b"a") + chunk(b"b"))
            await gate.wait()
            w.write(chunk(b"c") + chunk(b""))

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
                    w.write(chunk(b"tick"))
                    await w.drain()
                    await asyncio.sleep(0.02)
            except ConnectionError:
                cut.set()  # the gateway closed the connection: the model is told to stop

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = plane_for(tmp_path, route, 30.0)
            streaming = StreamingPlane(plane, max_duration_s=0.5)
            streamed = await streaming.invoke(route, request())
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
            again = await streaming.invoke(route, request())
            assert await anext(again.parts) == b"tick"
            again.close()

    with caplog.at_level(logging.WARNING, logger="modelhost.gateway"):
        asyncio.run(main())
    assert any("allotted time" in r.getMessage() for r in caplog.records)


def test_a_framed_answer_is_read_as_the_models_bytes_and_its_error_frame_ends_it(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        framed = CHUNKED[:-2] + b"x-modelhost-stream-frames: 1\r\n\r\n"
        one, two = frame(DATA, b"one "), frame(DATA, b"two ")
        failure = frame(ERROR, b"ValueError: boom\nTraceback")

        async def script(w: asyncio.StreamWriter) -> None:
            # Frames and chunks need not line up: a frame across two chunks, two in one.
            w.write(framed + chunk(one[:3]) + chunk(one[3:] + two) + chunk(failure))
            w.write(chunk(b""))

        heads: list[bytes] = []
        async with scripted(script, heads) as port:
            streamed = await parts_until_error(tmp_path, port)
            got, error = streamed.parts, streamed.error
            assert b"".join(got) == b"one two "
            assert error.error_code == "StreamBroken"
            assert "ValueError: boom\nTraceback" in error.message
            # Every streamed request offers to read frames.
            assert b"\r\nx-modelhost-stream-frames: 1\r\n" in heads[0]

    asyncio.run(main())


def test_a_framed_answer_cut_mid_frame_is_stream_broken(tmp_path: Path) -> None:
    async def main() -> None:
        framed = CHUNKED[:-2] + b"x-modelhost-stream-frames: 1\r\n\r\n"

        async def script(w: asyncio.StreamWriter) -> None:
            w.write(framed + chunk(frame(DATA, b"abc")[:-1]) + chunk(b""))

        async with scripted(script) as port:
            a = instance("a", port, host="127.0.0.1")
            route = EndpointRoute("ep", (VariantRoute("AllTraffic", 1.0, (a,)),))
            plane, _ = plane_for(tmp_path, route, 30.0)
            streamed = await StreamingPlane(plane).invoke(route, request())
            with pytest.raises(ModelStreamError) as info:
                async for _ in streamed.parts:
                    pass
            assert info.value.error_code == "StreamBroken"
            assert "mid-frame" in info.value.message

    asyncio.run(main())
