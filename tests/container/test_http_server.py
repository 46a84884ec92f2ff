"""The instance's own HTTP server (container/http_server.py) over raw sockets, in-process.

A real `InstanceApp` with a loaded XGBoost model, served on a loopback port by the server
running on its own event loop in a thread; the test talks to it with plain sockets so
partial writes, pipelining and malformed or slow requests are exactly what is sent.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.container.app import InstanceApp
from modelhost.container.health import SharedHealth
from modelhost.container.http_connection import HttpLimits
from modelhost.container.http_server import HttpServer, may_accept
from modelhost.container.listen import tcp_listener
from tests.container.instance_support import write_booster
from tests.container.support import loaded_app

pytestmark = pytest.mark.timeout(120)

WAIT_S = 30.0


class Running:
    """`HttpServer` serving `app` on a loopback port from a thread of its own."""

    def __init__(self, app: InstanceApp, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits
        self.sock = tcp_listener("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.server: HttpServer | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(WAIT_S)

    def _run(self) -> None:
        async def main() -> None:
            self.server = HttpServer(self.app, self.limits)
            self.ready.set()
            await self.server.serve([self.sock], grace_s=5)

        self.loop.run_until_complete(main())
        self.loop.close()

    def stop(self) -> None:
        def exit_now() -> None:
            assert self.server is not None
            self.server.should_exit = True

        self.loop.call_soon_threadsafe(exit_now)
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive()

    def connect(self) -> socket.socket:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn


class Reader:
    """Reads whole responses (content-length framed) off a socket."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.conn.recv(65536)
        self.buffer += data
        return bool(data)

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed before a response: {self.buffer!r}")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buffer) < size:
            if not self._fill():
                raise ConnectionError("closed in a body")
        body, self.buffer = self.buffer[:size], self.buffer[size:]
        return status, headers, body

    def closed(self) -> bool:
        """True when the server closed the connection (after any buffered response)."""
        try:
            return not self._fill()
        except ConnectionResetError:
            return True


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


def _count(answer: bytes) -> int:
    """How many scores a CSV answer holds (comma- or line-separated)."""
    return len(answer.replace(b"\n", b",").strip(b",").split(b","))


def _post(body: bytes, headers: str = "Content-Type: text/csv\r\n") -> bytes:
    return (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


PING = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture()
def app(tmp_path: Path, trained: tuple[Any, np.ndarray]) -> Iterator[InstanceApp]:
    instance = loaded_app(write_booster(tmp_path / "m", trained[0]))
    yield instance
    instance.close()


def serve(app: InstanceApp, **limits: Any) -> Running:
    return Running(app, HttpLimits(**limits))


def test_ping_and_invocations_on_one_kept_alive_connection(
    app: InstanceApp, trained: tuple[Any, np.ndarray]
) -> None:
    rows = trained[1]
    running = serve(app)
    try:
        with running.connect() as conn:
            reader = Reader(conn)
            conn.sendall(PING)
            status, headers, body = reader.response()
            assert status == 200 and json.loads(body) == {"status": "Healthy"}
            assert headers["content-type"] == "application/json" and "date" in headers
            for _ in range(3):
                conn.sendall(_post(_csv(rows[:2])))
                status, headers, body = reader.response()
                assert status == 200 and headers["content-type"] == "text/csv"
                assert _count(body) == 2
            conn.sendall(
                _post(_csv(rows[:1]), "Content-Type: text/csv\r\nAccept: application/json\r\n")
            )
            status, headers, body = reader.response()
            assert status == 200 and headers["content-type"] == "application/json"
            assert "predictions" in json.loads(body)
    finally:
        running.stop()


def test_errors_and_rare_paths_answer_as_the_asgi_app_does(
    app: InstanceApp, trained: tuple[Any, np.ndarray]
) -> None:
    running = serve(app)
    try:
        with running.connect() as conn:
            reader = Reader(conn)
            conn.sendall(_post(b"a,b"))
            status, headers, body = reader.response()
            assert status == 415 and headers["content-type"].startswith("text/plain")
            assert b"Malformed CSV" in body
            conn.sendall(_post(b"1,2", "Content-Type: application/x-nope\r\n"))
            assert reader.response()[0] == 415
            conn.sendall(b"GET /invocations HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = reader.response()
            assert status == 405 and headers["allow"] == "POST"
            conn.sendall(b"GET /execution-parameters HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = reader.response()
            assert status == 200 and json.loads(body)["BatchStrategy"] == "MULTI_RECORD"
            conn.sendall(b"GET /nope?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reader.response()[:1] == (404,)
            conn.sendall(b"HEAD /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = reader.response(head_only=True)
            assert status == 200 and body == b"" and int(headers["content-length"]) > 0
            conn.sendall(PING)  # the HEAD answer carried no body: the next one is intact
            assert reader.response()[0] == 200
    finally:
        running.stop()


def test_a_request_in_pieces_and_pipelined_requests_answer_in_order(
    app: InstanceApp, trained: tuple[Any, np.ndarray]
) -> None:
    rows = trained[1]
    running = serve(app)
    try:
        with running.connect() as conn:
            reader = Reader(conn)
            request = _post(_csv(rows[:3]))
            for i in range(0, len(request), 7):  # a byte at a time would also do
                conn.sendall(request[i : i + 7])
                time.sleep(0.001)
            status, _, single = reader.response()
            assert status == 200 and _count(single) == 3
            # Fast path, ASGI path, fast path, error, in one write: answered in order.
            conn.sendall(
                PING
                + b"GET /execution-parameters HTTP/1.1\r\nHost: x\r\n\r\n"
                + _post(_csv(rows[:3]))
                + _post(b"x")
                + PING
            )
            answers = [reader.response() for _ in range(5)]
            assert [a[0] for a in answers] == [200, 200, 200, 415, 200]
            assert b"MaxPayloadInMB" in answers[1][2] and answers[2][2] == single
    finally:
        running.stop()


def test_a_large_body_runs_in_the_worker_thread(
    app: InstanceApp, trained: tuple[Any, np.ndarray]
) -> None:
    rows = np.repeat(trained[1], 3000, axis=0)  # 30,000 rows, ~2.5 MB
    body = _csv(rows)
    assert app.model is not None and len(body) > app.model.inline_max_bytes
    running = serve(app)
    try:
        with running.connect() as conn:
            reader = Reader(conn)
            conn.sendall(_post(body))
            status, _, answer = reader.response()
            assert status == 200 and _count(answer) == len(rows)
            conn.sendall(PING)  # and the connection stays usable
            assert reader.response()[0] == 200
    finally:
        running.stop()


def test_bad_requests_get_400_and_oversized_ones_413_or_431(app: InstanceApp) -> None:
    running = serve(app, max_body_bytes=1000, max_head_bytes=2048, max_headers=20)
    try:
        cases = [
            (b"NOT HTTP AT ALL\r\n\r\n", 400),
            (b"GET /ping HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (_post(b"1" * 1001), 413),
            (b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n", 431),
            (b"GET /ping HTTP/1.1\r\n" + b"X-A: 1\r\n" * 30 + b"\r\n", 431),
            (b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * 4096, 431),  # and never finished
        ]
        for request, expected in cases:
            with running.connect() as conn:
                reader = Reader(conn)
                conn.sendall(request)
                status, headers, _ = reader.response()
                assert (status, headers.get("connection")) == (expected, "close"), request[:40]
                assert reader.closed()
    finally:
        running.stop()


def test_connection_close_http_1_0_and_upgrades_close_after_the_answer(app: InstanceApp) -> None:
    running = serve(app)
    try:
        with running.connect() as conn:  # no protocol upgrade: answered, then closed
            reader = Reader(conn)
            conn.sendall(b"GET /ping HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            assert reader.response()[0] == 200
            assert reader.closed()
        for request in (
            b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET /ping HTTP/1.0\r\n\r\n",
        ):
            with running.connect() as conn:
                reader = Reader(conn)
                conn.sendall(request)
                status, headers, _ = reader.response()
                assert status == 200 and headers["connection"] == "close"
                assert reader.closed()
    finally:
        running.stop()


def test_slow_heads_and_bodies_get_408_and_idle_connections_close(app: InstanceApp) -> None:
    running = serve(app, header_timeout_s=0.3, body_timeout_s=0.3, keep_alive_s=0.3)
    try:
        slow = [b"GET /ping HTTP/1.1\r\nHost:", _post(b"1,2,3")[:-3]]
        for partial in slow:
            with running.connect() as conn:
                reader = Reader(conn)
                conn.sendall(partial)  # and never the rest
                status, headers, _ = reader.response()
                assert (status, headers["connection"]) == (408, "close")
                assert reader.closed()
        with running.connect() as conn:  # an answered, then idle connection is closed
            reader = Reader(conn)
            conn.sendall(PING)
            assert reader.response()[0] == 200
            assert reader.closed()
        # A slow client does not hold up another one.
        with running.connect() as slow_conn, running.connect() as conn:
            slow_conn.sendall(b"GET /ping HTTP/1.1\r\n")
            conn.sendall(PING)
            assert Reader(conn).response()[0] == 200
    finally:
        running.stop()


def test_shutdown_lets_a_running_request_answer(
    app: InstanceApp, trained: tuple[Any, np.ndarray]
) -> None:
    rows = np.repeat(trained[1], 3000, axis=0)
    running = serve(app)
    with running.connect() as busy, running.connect() as idle:
        busy_reader, idle_reader = Reader(busy), Reader(idle)
        for conn, reader in ((busy, busy_reader), (idle, idle_reader)):
            conn.sendall(PING)  # both accepted and answered once
            assert reader.response()[0] == 200
        busy.sendall(_post(_csv(rows)))
        time.sleep(0.05)  # let the request start (the order does not change the outcome)
        running.stop()
        status, _, answer = busy_reader.response()
        assert status == 200 and _count(answer) == len(rows)
        assert idle_reader.closed()


def test_workers_take_the_shared_sockets_connections_in_turn() -> None:
    assert may_accept([0, 0], 0) and may_accept([0, 0], 1)
    assert not may_accept([1, 0], 0) and may_accept([1, 0], 1)
    assert may_accept([2, 2, 3], 1) and not may_accept([2, 2, 3], 2)
    health = SharedHealth(2)
    health.index = 1
    health.add_connections(3)
    health.add_connections(-1)
    assert health.connections() == [0, 2]


@pytest.mark.integration
def test_an_instance_told_uvicorn_serves_the_same_answers(
    tmp_path: Path, trained: tuple[Any, np.ndarray]
) -> None:
    from tests.container.instance_support import Instance

    model_dir = write_booster(tmp_path / "model", trained[0])
    answers = []
    for server in ("uvicorn", "modelhost"):
        with Instance(model_dir, env={"MH_INSTANCE_HTTP_SERVER": server}) as instance:
            assert instance.wait_ping() == (200, {"status": "Healthy"})
            status, headers, body = instance.invoke(_csv(trained[1][:2]), "text/csv")
            answers.append((status, headers["content-type"], body))
            assert instance.request("GET", "/nope")[0] == 404
    assert answers[0] == answers[1] and answers[0][0] == 200
