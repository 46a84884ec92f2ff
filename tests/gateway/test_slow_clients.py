"""Slow clients (slowloris heads, slow bodies, idle connections) are cut off by a real server
with short limits, while ordinary requests on other connections keep being answered."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from modelhost.testing.server import ModelhostServer

pytestmark = pytest.mark.integration

SLOW_ENV = {
    "MODELHOST_HTTP_HEADER_TIMEOUT_S": "1",
    "MODELHOST_HTTP_BODY_TIMEOUT_S": "2",
    "MODELHOST_HTTP_KEEPALIVE_S": "1",
}
ATTACK_DEADLINE_S = 60.0
LIST_ENDPOINTS = {
    "X-Amz-Target": "SageMaker.ListEndpoints",
    "Content-Type": "application/x-amz-json-1.1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelhostServer]:
    with ModelhostServer(tmp_path_factory.mktemp("slow-home"), env=SLOW_ENV) as srv:
        yield srv


def _connect(server: ModelhostServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _dribble(sock: socket.socket, head: bytes, tail: Callable[[int], bytes], gap_s: float) -> bytes:
    """Send `head`, then `tail(i)` one piece per `gap_s` until the server closes the
    connection; return what it answered (b'' for a silent close)."""
    answer = b""
    deadline = time.monotonic() + ATTACK_DEADLINE_S
    sock.sendall(head)
    i = 0
    while time.monotonic() < deadline:
        try:
            sock.sendall(tail(i))
        except OSError:  # reset or broken pipe: the server is gone from this connection
            return answer + _drain(sock)
        i += 1
        readable, _, _ = select.select([sock], [], [], gap_s)
        if readable:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return answer
            if not chunk:
                return answer
            answer += chunk
    raise AssertionError(f"the server never cut off the slow client; it answered {answer!r}")


def _drain(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


def _closed_by_server(sock: socket.socket, deadline: float) -> bytes | None:
    """What the server sent before closing `sock` by `deadline`, or None if it stayed open."""
    data = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.2)
        if not readable:
            continue
        try:
            chunk = sock.recv(65536)
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def _ordinary_requests(server: ModelhostServer, until: Callable[[], bool]) -> int:
    """Ping and a signed ListEndpoints on fresh connections until `until()`; every one must
    answer 200. Returns how many were answered."""
    answered = 0
    deadline = time.monotonic() + ATTACK_DEADLINE_S
    body = b"{}"
    headers = LIST_ENDPOINTS
    while (answered < 4 or not until()) and time.monotonic() < deadline:
        with urllib.request.urlopen(server.url + "/ping", timeout=10) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(server.signed("POST", "/", body, headers), timeout=10) as resp:
            assert resp.status == 200
            assert "Endpoints" in json.loads(resp.read())
        answered += 2
    return answered


def _in_thread(work: Callable[[], bytes]) -> tuple[threading.Thread, list[bytes]]:
    out: list[bytes] = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    return thread, out


def test_slowloris_head_is_cut_off_while_others_are_served(server: ModelhostServer) -> None:
    sock = _connect(server)
    head = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    thread, out = _in_thread(lambda: _dribble(sock, head, lambda i: b"a", 0.1))
    answered = _ordinary_requests(server, until=lambda: not thread.is_alive())
    thread.join(ATTACK_DEADLINE_S)
    sock.close()
    assert out, "the slow client's thread did not finish"
    assert out[0].startswith(b"HTTP/1.1 408 "), out[0]
    assert b"RequestTimeout" in out[0]
    assert answered >= 4


def test_slow_body_is_cut_off(server: ModelhostServer) -> None:
    """A signed control call whose body dribbles in gets 408 once the body timeout passes."""
    body = b'{"MaxResults": 10, "NameContains": "slow"}'
    headers = LIST_ENDPOINTS
    request = server.signed("POST", "/", body, headers)
    lines = [b"POST / HTTP/1.1", f"Host: 127.0.0.1:{server.port}".encode()]
    lines += [f"{k}: {v}".encode() for k, v in request.header_items()]
    lines.append(f"Content-Length: {len(body)}".encode())
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    sock = _connect(server)
    # One byte every 0.25 s: the body would take ~10 s; the server allows 2.
    thread, out = _in_thread(
        lambda: _dribble(sock, head, lambda i: body[i : i + 1] if i < len(body) else b"", 0.25)
    )
    answered = _ordinary_requests(server, until=lambda: not thread.is_alive())
    thread.join(ATTACK_DEADLINE_S)
    sock.close()
    assert out and out[0].startswith(b"HTTP/1.1 408 "), out
    assert b"request body" in out[0]
    assert answered >= 4


def test_idle_connections_are_closed_while_others_are_served(server: ModelhostServer) -> None:
    idle = [_connect(server) for _ in range(40)]
    # One connection that asks once and then keeps the connection idle (keep-alive).
    kept = _connect(server)
    kept.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    closed: list[bytes | None] = []

    def watch() -> bytes:
        deadline = time.monotonic() + ATTACK_DEADLINE_S
        closed.extend(_closed_by_server(s, deadline) for s in [*idle, kept])
        return b""

    thread, _ = _in_thread(watch)
    answered = _ordinary_requests(server, until=lambda: not thread.is_alive())
    thread.join(ATTACK_DEADLINE_S)
    for s in [*idle, kept]:
        s.close()
    assert len(closed) == 41
    # Connections that never sent a byte are closed without an answer.
    assert closed[:40] == [b""] * 40
    # The kept-alive one got its answer, then was closed after the idle time.
    assert closed[40] is not None and closed[40].startswith(b"HTTP/1.1 200 "), closed[40]
    assert answered >= 4
