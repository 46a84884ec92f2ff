"""The gateway's protocol-level InvokeEndpoint path (gateway/fastpath.py), on a fake socket
with fake instances: which requests it takes, that its answers are the ASGI path's, and
that partial reads, pipelining, bad requests and the slow-client limits behave as before."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelhost.testing.dataplane import Reply, answer
from tests.gateway.fastpath_support import (
    BODY_S,
    MAX_PAYLOAD_BYTES,
    Socket,
    connect,
    invocation,
    settle,
)

_VOLATILE = (b"x-amzn-requestid", b"date")


def _stable(answers: list[tuple[int, dict[bytes, bytes], bytes]]) -> list[object]:
    """Answers without what differs between two identical requests (id, date)."""
    out: list[object] = []
    for status, headers, body in answers:
        kept = {k: v for k, v in headers.items() if k not in _VOLATILE}
        if b"request id" in body:  # InternalFailure messages quote the id
            body = body.split(b"request id")[0]
        out.append((status, kept, body))
    return out


async def _both(tmp_path: Path, data: bytes, count: int = 1) -> tuple[list[object], list[object]]:
    """The answers of the fast path and of the ASGI path to the same bytes."""
    results = []
    for fast in (True, False):
        protocol, sock, _ = connect(
            tmp_path, answer(body=b"0.5", content_type=b"text/csv"), fast=fast
        )
        protocol.data_received(data)
        await settle(sock, count)
        results.append(_stable(sock.answers()))
    return results[0], results[1]


def test_a_plain_invocation_takes_the_fast_path(tmp_path: Path) -> None:
    async def run() -> None:
        protocol, sock, app = connect(tmp_path, answer(body=b"0.5", content_type=b"text/csv"))
        protocol.data_received(invocation())
        await settle(sock, 1)
        assert app.paths == []  # the ASGI application never saw it
        [(status, headers, body)] = sock.answers()
        assert (status, body) == (200, b"0.5")
        assert headers[b"content-type"] == b"text/csv"
        assert headers[b"x-amzn-invoked-production-variant"] == b"AllTraffic"
        assert len(headers[b"x-amzn-requestid"]) == 36
        assert not sock.closed

    asyncio.run(run())


@pytest.mark.parametrize(
    "data",
    [
        invocation(),
        invocation(endpoint="nope"),  # unknown endpoint: ValidationError
        invocation(endpoint="bad_name"),  # the name's rule
        invocation(body=b""),  # empty body
        invocation(extra=b"accept: " + b"a" * 2000 + b"\r\n"),  # a modeled header too long
        invocation(extra=b"x-amzn-sagemaker-target-model: m.tar.gz\r\n"),  # not multi-model
        invocation(extra=b"x-amzn-sagemaker-target-variant: Other\r\n"),
    ],
    ids=["ok", "unknown", "bad-name", "empty", "long-accept", "target-model", "variant"],
)
def test_answers_are_the_asgi_paths(tmp_path: Path, data: bytes) -> None:
    fast, slow = asyncio.run(_both(tmp_path, data))
    assert fast == slow


def test_a_model_error_is_the_asgi_paths(tmp_path: Path) -> None:
    async def run() -> tuple[list[object], list[object]]:
        results = []
        for fast in (True, False):
            protocol, sock, _ = connect(tmp_path, answer(500, b"boom"), fast=fast)
            protocol.data_received(invocation())
            await settle(sock, 1)
            results.append(_stable(sock.answers()))
        return results[0], results[1]

    fast, slow = asyncio.run(run())
    assert fast == slow
    assert fast[0][0] == 424  # type: ignore[index]


@pytest.mark.parametrize(
    "data",
    [
        b"GET /ping HTTP/1.1\r\nhost: x\r\n\r\n",
        b"POST /endpoints/ep/invocations?x=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n1,2",
        b"POST /endpoints/ep/async-invocations HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
        invocation(extra=b"x-amz-target: SageMaker.ListEndpoints\r\n"),
        invocation(extra=b"x-forwarded-proto: https\r\n"),
        invocation(extra=b"expect: 100-continue\r\n"),
        b"POST /endpoints/ep/invocations HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
        b"\r\n3\r\n1,2\r\n0\r\n\r\n",
        invocation(body=b"1" * (MAX_PAYLOAD_BYTES + 1)),  # over the limit: the guard's 413
    ],
    ids=["ping", "query", "async", "target", "proxy", "expect", "chunked", "too-large"],
)
def test_other_requests_take_the_asgi_path(tmp_path: Path, data: bytes) -> None:
    async def run() -> None:
        protocol, sock, app = connect(tmp_path, answer())
        protocol.data_received(data)
        await settle(sock, 1)
        assert len(app.paths) == 1

    asyncio.run(run())


def test_partial_reads(tmp_path: Path) -> None:
    """A head and a body that arrive a few bytes at a time."""

    async def run() -> None:
        protocol, sock, app = connect(tmp_path, answer(body=b"0.5"))
        data = invocation(b"1,2,3,4,5,6")
        for i in range(0, len(data), 5):
            protocol.data_received(data[i : i + 5])
            await asyncio.sleep(0)
        await settle(sock, 1)
        assert app.paths == []
        assert sock.answers()[0][2] == b"0.5"

    asyncio.run(run())


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    """The second request arrives while the first is served: it waits its turn (on the
    ASGI path, as uvicorn queues it), and the answers go out in request order."""
    release = asyncio.Event

    async def run() -> None:
        gate = release()
        seen: list[bytes] = []

        async def handler(
            _m: bytes, _p: bytes, _h: list[tuple[bytes, bytes]], body: bytes
        ) -> Reply:
            seen.append(body)
            if body == b"first":
                await gate.wait()
            return 200, {b"content-type": b"text/plain"}, body.upper()

        protocol, sock, app = connect(tmp_path, handler)
        protocol.data_received(invocation(b"first") + invocation(b"second") + invocation(b"third"))
        await asyncio.sleep(0.01)
        assert sock.answers() == []  # the first is not answered, so neither are the others
        gate.set()
        await settle(sock, 3)
        assert [a[2] for a in sock.answers()] == [b"FIRST", b"SECOND", b"THIRD"]
        assert seen == [b"first", b"second", b"third"]
        assert len(app.paths) == 2  # the two that queued went through ASGI

    asyncio.run(run())


def test_keep_alive_then_the_fast_path_again(tmp_path: Path) -> None:
    async def run() -> None:
        protocol, sock, app = connect(tmp_path, answer(body=b"0.5"))
        for n in range(1, 4):
            protocol.data_received(invocation())
            await settle(sock, n)
        assert app.paths == [] and not sock.closed

    asyncio.run(run())


def test_connection_close_is_honoured(tmp_path: Path) -> None:
    async def run() -> None:
        protocol, sock, app = connect(tmp_path, answer(body=b"0.5"))
        protocol.data_received(invocation(extra=b"connection: close\r\n"))
        await settle(sock, 1)
        assert app.paths == []
        assert sock.answers()[0][1][b"connection"] == b"close"
        assert sock.closed

    asyncio.run(run())


def test_a_bad_request_gets_400(tmp_path: Path) -> None:
    async def run() -> None:
        protocol, sock, _ = connect(tmp_path, answer())
        protocol.data_received(b"POST /endpoints/ep/invocations HTTP/1.1\r\nbad header\r\n\r\n")
        assert sock.written.startswith(b"HTTP/1.1 400 ")
        assert sock.closed

    asyncio.run(run())


def test_a_client_gone_before_the_answer_gets_nothing(tmp_path: Path) -> None:
    async def run() -> None:
        gate = asyncio.Event()

        async def handler(
            _m: bytes, _p: bytes, _h: list[tuple[bytes, bytes]], body: bytes
        ) -> Reply:
            await gate.wait()
            return 200, {}, body

        protocol, sock, _ = connect(tmp_path, handler)
        protocol.data_received(invocation())
        await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        gate.set()
        await asyncio.sleep(0.01)
        assert sock.written == b""

    asyncio.run(run())


def test_a_dribbled_body_still_gets_408(tmp_path: Path) -> None:
    async def run() -> None:
        protocol, sock, app = connect(tmp_path, answer())
        data = invocation(b"1,2,3")
        protocol.data_received(data[:-2])  # the head and part of the body
        now = protocol.loop.time()  # type: ignore[attr-defined]
        protocol.check_deadlines(now + BODY_S + 0.1)  # type: ignore[attr-defined]
        assert sock.closed and sock.written.startswith(b"HTTP/1.1 408 ")
        assert app.paths == []

    asyncio.run(run())


def test_a_head_over_the_cap_still_gets_431(tmp_path: Path) -> None:
    async def run() -> None:
        protocol, sock, _ = connect(tmp_path, answer())
        protocol.data_received(invocation(extra=b"x-big: " + b"a" * 5000 + b"\r\n")[:4500])
        assert sock.closed and sock.written.startswith(b"HTTP/1.1 431 ")

    asyncio.run(run())


def test_fast_path_off_sends_everything_to_asgi(tmp_path: Path) -> None:
    async def run() -> None:
        protocol, sock, app = connect(tmp_path, answer(body=b"0.5"), fast=False)
        protocol.data_received(invocation())
        await settle(sock, 1)
        assert app.paths == ["/endpoints/ep/invocations"]
        assert isinstance(sock, Socket)

    asyncio.run(run())


def test_an_idle_kept_alive_connection_is_closed(tmp_path: Path) -> None:
    """uvicorn's keep-alive timeout, kept as a deadline the sweep checks."""

    async def run() -> None:
        protocol, sock, _ = connect(tmp_path, answer(body=b"0.5"), http_keepalive_s=5)
        protocol.timeout_keep_alive = 5  # type: ignore[attr-defined]  # uvicorn's, from the setting
        protocol.data_received(invocation())
        await settle(sock, 1)
        now = protocol.loop.time()  # type: ignore[attr-defined]
        protocol.check_deadlines(now + 4.9)  # type: ignore[attr-defined]
        assert not sock.closed
        protocol.data_received(invocation())  # a second request re-arms the deadline
        await settle(sock, 2)
        now = protocol.loop.time()  # type: ignore[attr-defined]
        protocol.check_deadlines(now + 4.9)  # type: ignore[attr-defined]
        assert not sock.closed
        protocol.check_deadlines(now + 5.1)  # type: ignore[attr-defined]
        assert sock.closed and len(sock.answers()) == 2

    asyncio.run(run())
