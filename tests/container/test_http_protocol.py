"""Responses written in one piece (container/http_protocol.py), over a recording transport."""

from __future__ import annotations

import asyncio

from modelhost.container.http_protocol import _OneWriteTransport, one_write

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def run(body: object) -> None:
    async def main() -> None:
        await body()  # type: ignore[operator]

    asyncio.run(main())


def test_a_head_and_its_body_go_out_in_one_write() -> None:
    async def body() -> None:
        inner = Recorder()
        t = _OneWriteTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(HEAD)
        assert inner.writes == []
        t.write(b"0.5")
        assert inner.writes == [HEAD + b"0.5"]
        await asyncio.sleep(0)  # the fallback flush finds nothing held
        assert inner.writes == [HEAD + b"0.5"]
        assert t.get_extra_info("peername") == "info:peername"  # the rest is delegated

    run(body)


def test_a_lone_head_goes_out_at_the_next_loop_turn_and_close_sends_what_is_held() -> None:
    async def body() -> None:
        inner = Recorder()
        t = _OneWriteTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(HEAD)
        await asyncio.sleep(0)
        assert inner.writes == [HEAD]
        t.write(HEAD)
        t.close()
        assert inner.writes == [HEAD, HEAD] and inner.closed

    run(body)


def test_continue_and_whole_messages_are_never_held() -> None:
    async def body() -> None:
        inner = Recorder()
        t = _OneWriteTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        whole = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\nno"
        t.write(whole)
        assert inner.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", whole]
        t.write(HEAD)
        t.abort()  # a broken connection: what is held is dropped
        await asyncio.sleep(0)
        assert len(inner.writes) == 2 and inner.aborted

    run(body)


def test_the_protocol_class_wraps_its_transport() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    cls = one_write()
    assert issubclass(cls, HttpToolsProtocol) and cls.__name__ == "OneWriteHttpToolsProtocol"
