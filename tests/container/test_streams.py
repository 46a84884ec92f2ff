"""Streamed answers on the instance (`container.streams`): a runtime's `StreamedBody` as ASGI
messages, one per chunk, with toy runtimes and a recording `send`; no process, no HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import pytest

from modelhost.container import stream_error, stream_frames, streams
from modelhost.container.asgi import Message
from modelhost.container.invoke import ServedModel, invoke, send_reply
from modelhost.container.stream_error import STREAM_ERROR
from modelhost.container.streams import StreamSignal, stream_signal
from modelhost.frameworks.base import Context
from modelhost.frameworks.streaming import Body, StreamedBody
from tests.container.support import HandleRuntime


class Tokens(HandleRuntime):
    """Streams the body's words: `sync` (a generator) or async, as the body's first word
    says; `boom` raises when reached, `42` yields an int. Records where `next` ran and
    whether the generator was closed."""

    name: ClassVar[str] = "tokens"

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []
        self.closed = threading.Event()

    def handle(
        self, body: bytes, content_type: str | None, accept: str | None, context: Context
    ) -> tuple[Body, str]:
        kind, *words = body.decode().split()
        chunks = self._sync(words) if kind == "sync" else self._async(words)
        return StreamedBody(chunks, "predict_fn in tokens.py"), "text/plain"

    def _word(self, word: str) -> Any:
        self.threads.append(threading.current_thread().name)
        if word == "boom":
            raise ValueError("boom")
        return 42 if word == "42" else f"{word} "

    def _sync(self, words: list[str]) -> Iterator[Any]:
        try:
            for word in words:
                yield self._word(word)
        finally:
            self.closed.set()

    async def _async(self, words: list[str]) -> AsyncIterator[Any]:
        try:
            for word in words:
                await asyncio.sleep(0)
                yield self._word(word)
        finally:
            self.closed.set()


async def _serve(
    runtime: Tokens,
    body: bytes,
    executor: Any,
    gone: bool = False,
    signal: StreamSignal = StreamSignal.BREAK,
) -> list[Message]:
    """The messages `send_reply` sends for one invocation; `gone`: the client has left;
    `signal`: how the server and its client tell a failure (TRAILER: the instance's own
    server; FRAMES: uvicorn asked by the gateway)."""
    sent: list[Message] = []
    left = asyncio.Event()
    if gone:
        left.set()

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        await left.wait()
        return {"type": "http.disconnect"}

    reply = await invoke(ServedModel(runtime, "/m"), body, [], executor)
    await send_reply(send, receive, reply, signal)
    return sent


def _bodies(sent: list[Message]) -> list[tuple[bytes, bool]]:
    return [(m["body"], m["more_body"]) for m in sent if m["type"] == "http.response.body"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_each_chunk_is_one_body_message(kind: str, executor: Any) -> None:
    runtime = Tokens()
    sent = asyncio.run(_serve(runtime, f"{kind} once upon a time".encode(), executor))
    start = sent[0]
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"text/plain"
    assert b"content-length" not in headers  # so the server writes it chunked
    assert _bodies(sent) == [
        (b"once ", True),
        (b"upon ", True),
        (b"a ", True),
        (b"time ", True),
        (b"", False),
    ]
    if kind == "sync":
        # User code of unknown cost: never on the event loop.
        assert all(name.startswith("predict") for name in runtime.threads)


def test_a_failing_first_chunk_is_an_ordinary_error_answer(executor: Any) -> None:
    sent = asyncio.run(_serve(Tokens(), b"sync boom later", executor))
    assert sent[0]["status"] == 500
    assert dict(sent[0]["headers"])[b"content-length"]
    assert sent[1]["body"].startswith(b"ValueError: boom\nTraceback")


@pytest.mark.parametrize("body", [b"sync one boom two", b"async one 42 two"])
def test_a_failure_mid_stream_leaves_the_answer_unfinished(body: bytes, executor: Any) -> None:
    runtime = Tokens()
    sent = asyncio.run(_serve(runtime, body, executor))
    # No final message: the ASGI server closes the connection without the last chunk,
    # which the gateway sees as a broken stream.
    assert _bodies(sent) == [(b"one ", True)]
    assert runtime.closed.is_set()


@pytest.mark.parametrize("body", [b"sync one boom two", b"async one boom two"])
def test_with_trailers_a_failure_mid_stream_ends_it_with_the_error_trailer(
    body: bytes, executor: Any
) -> None:
    runtime = Tokens()
    sent = asyncio.run(_serve(runtime, body, executor, signal=StreamSignal.TRAILER))
    start = sent[0]
    assert start["trailers"] is True
    assert dict(start["headers"])[b"trailer"] == STREAM_ERROR
    assert _bodies(sent) == [(b"one ", True), (b"", False)]
    last = sent[-1]
    assert last["type"] == "http.response.trailers" and last["more_trailers"] is False
    [(name, value)] = last["headers"]
    assert name == STREAM_ERROR
    # The text the contract's error answer would carry: the error, then its traceback.
    assert stream_error.decode(value).startswith("ValueError: boom\nTraceback")
    assert runtime.closed.is_set()


def test_with_trailers_a_whole_stream_ends_with_no_trailer_fields(executor: Any) -> None:
    sent = asyncio.run(_serve(Tokens(), b"sync a b", executor, signal=StreamSignal.TRAILER))
    assert _bodies(sent) == [(b"a ", True), (b"b ", True), (b"", False)]
    assert sent[-1] == {"type": "http.response.trailers", "headers": [], "more_trailers": False}


@pytest.mark.parametrize("body", [b"sync one boom two", b"async one boom two"])
def test_framed_a_failure_mid_stream_ends_it_with_an_error_frame(
    body: bytes, executor: Any
) -> None:
    runtime = Tokens()
    sent = asyncio.run(_serve(runtime, body, executor, signal=StreamSignal.FRAMES))
    start = sent[0]
    assert dict(start["headers"])[stream_frames.FRAMES] == b"1"
    assert "trailers" not in start
    *frames, (end, more) = _bodies(sent)
    assert (end, more) == (b"", False)  # the answer ends properly: the frame says why
    reader = stream_frames.Deframer()
    data = [piece for frame, _ in frames for piece in reader.feed(frame)]
    assert data == [b"one "] and reader.at_boundary
    assert reader.error is not None and reader.error.startswith("ValueError: boom\nTraceback")
    assert runtime.closed.is_set()


def test_framed_a_whole_stream_is_its_chunks_framed(executor: Any) -> None:
    sent = asyncio.run(_serve(Tokens(), b"sync a b", executor, signal=StreamSignal.FRAMES))
    frame = stream_frames.frame
    assert _bodies(sent) == [
        (frame(stream_frames.DATA, b"a "), True),
        (frame(stream_frames.DATA, b"b "), True),
        (b"", False),
    ]


def test_the_signal_follows_the_server_and_what_the_client_asked() -> None:
    trailers = {"extensions": {"http.response.trailers": {}}, "headers": []}
    assert stream_signal(trailers) is StreamSignal.TRAILER
    asked = [(stream_frames.FRAMES, b"1")]
    # The instance's own server keeps its trailer even when frames are offered.
    assert stream_signal({**trailers, "headers": asked}) is StreamSignal.TRAILER
    assert stream_signal({"headers": asked}) is StreamSignal.FRAMES  # uvicorn, the gateway
    assert stream_signal({"headers": []}) is StreamSignal.BREAK  # uvicorn, anyone else


def test_the_error_trailer_holds_any_text_in_one_bounded_line() -> None:
    text = "100% wrong:\r\nünïcode\tand more " + "x" * 10_000
    value = stream_error.encode(text)
    assert value.isascii() and b"\r" not in value and b"\n" not in value
    assert stream_error.decode(value) == text[: stream_error.MAX_MESSAGE_CHARS]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_client_gone_stops_and_closes_the_generator(kind: str, executor: Any) -> None:
    runtime = Tokens()
    words = " ".join(str(i) for i in range(1000))
    sent = asyncio.run(_serve(runtime, f"{kind} {words}".encode(), executor, gone=True))
    assert len(_bodies(sent)) < 1000
    assert runtime.closed.is_set()  # its finally ran


def test_a_sync_stream_gives_the_thread_back_between_slices(
    executor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "SLICE_S", 0.0)  # one item a slice
    runtime = Tokens()
    order: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        queued: list[Any] = []

        async def send(message: Message) -> None:
            if message.get("body") == b"a ":  # another request's prediction arrives
                queued.append(loop.run_in_executor(executor, order.append, "other"))

        async def receive() -> Message:
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        reply = await invoke(ServedModel(runtime, "/m"), b"sync a b c", [], executor)
        await send_reply(send, receive, reply)
        await asyncio.gather(*queued)

    original = runtime._word

    def word(w: str) -> Any:
        order.append(w)
        return original(w)

    monkeypatch.setattr(runtime, "_word", word)
    asyncio.run(main())
    assert order == ["a", "other", "b", "c"]
