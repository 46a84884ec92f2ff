"""The streaming edge's event stream, without processes: parts, then the failure event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from botocore.eventstream import EventStreamBuffer

from modelhost.errors import ModelStreamError
from modelhost.fleet.dataplane.streaming import Streamed
from modelhost.gateway.stream_api import StreamAPI


async def _parts(failure: BaseException | None) -> AsyncIterator[bytes]:
    yield b"a"
    yield b"b"
    if failure is not None:
        raise failure


def _run(failure: BaseException | None) -> tuple[dict[str, Any], list[Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    streamed = Streamed("AllTraffic", b"text/plain", b"k=v", _parts(failure))
    api = StreamAPI(None, 1000, "123456789012")  # type: ignore[arg-type]
    asyncio.run(api._send_stream(send, streamed, "req-1"))
    start, *bodies = sent
    assert bodies[-1]["more_body"] is False and all(b["more_body"] for b in bodies[:-1])
    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(b["body"] for b in bodies))
    return start, list(buffer)


def test_parts_then_the_end() -> None:
    start, messages = _run(None)
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/vnd.amazon.eventstream"
    assert headers[b"x-amzn-sagemaker-content-type"] == b"text/plain"
    assert headers[b"x-amzn-invoked-production-variant"] == b"AllTraffic"
    assert headers[b"x-amzn-sagemaker-custom-attributes"] == b"k=v"
    assert [m.payload for m in messages] == [b"a", b"b"]
    assert {m.headers[":event-type"] for m in messages} == {"PayloadPart"}


def test_a_model_stream_error_is_the_last_event() -> None:
    _, messages = _run(ModelStreamError("broke", "StreamBroken"))
    *parts, last = messages
    assert [m.payload for m in parts] == [b"a", b"b"]
    assert last.headers[":message-type"] == "exception"
    assert last.headers[":exception-type"] == "ModelStreamError"
    assert json.loads(last.payload) == {"Message": "broke", "ErrorCode": "StreamBroken"}


def test_anything_else_is_an_internal_stream_failure() -> None:
    _, messages = _run(RuntimeError("bug"))
    last = messages[-1]
    assert last.headers[":exception-type"] == "InternalStreamFailure"
    assert "RuntimeError" in json.loads(last.payload)["Message"]
