"""The instance's own HTTP/1.1 server (uvloop + httptools, no ASGI on the hot path).

Listens on the sockets it is given (the contract's TCP port, and the Unix socket the
gateway on this machine uses), runs `HttpConnection`s (container/http_connection.py), and
does what uvicorn did around them:

- a sweep every quarter of the shortest time limit (at most every second) refreshes the
  `date` header and cuts off connections past their deadline (slow head or body: 408;
  idle keep-alive: closed), so a request itself never arms a timer;
- SIGTERM/SIGINT (or `should_exit`, set when the gateway is gone) stops listening, closes
  idle connections, lets running requests answer (with `connection: close`) for up to the
  grace period, then cancels what is left.

Several workers share ONE Unix socket (container/workers.py binds it before forking).
libuv accepts every pending connection at once, so on a plain shared socket the first
worker to wake takes all of them (measured: 32 of 32). Here each worker accepts one at a
time, and only while no other worker holds fewer of the socket's connections (a count per
worker in shared memory, `SharedHealth`): the gateway's connections spread evenly. A
worker that leaves a connection to the others looks again after `DEFER_S`, and takes it
anyway once it has waited `MAX_DEFER_S` (the others may be busy in a long request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Coroutine, Sequence
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from modelhost.container.asgi_bridge import run_asgi, stream_reply
from modelhost.container.http_connection import HttpConnection, HttpLimits, Request
from modelhost.container.invoke import Reply

if TYPE_CHECKING:
    from modelhost.container.app import InstanceApp
    from modelhost.container.health import SharedHealth

log = logging.getLogger("modelhost.container")

DEFER_S = 0.005
MAX_DEFER_S = 0.25
ACCEPT_ERROR_PAUSE_S = 0.1  # out of file descriptors: let connections close first


def may_accept(counts: Sequence[int], mine: int) -> bool:
    """Whether worker `mine` takes the next connection of the shared socket: no other
    worker holds fewer (on a tie every such worker tries; one wins the accept)."""
    return counts[mine] <= min(counts)


class SharedAcceptor:
    """Accepts a listening socket shared by several workers, one connection at a time,
    leaving each to the worker that holds the fewest (see the module docstring)."""

    def __init__(self, server: HttpServer, sock: socket.socket, health: SharedHealth) -> None:
        self.server = server
        self.sock = sock
        self.health = health
        self.loop = server.loop
        self._fd = sock.fileno()
        self._deferred_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reading = False

    def start(self) -> None:
        self.sock.setblocking(False)
        self._resume()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self._fd)

    def _resume(self) -> None:
        self._timer = None
        if not self._reading and not self.server.should_exit:
            self._reading = True
            self.loop.add_reader(self._fd, self._readable)

    def _pause(self, delay_s: float) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self._fd)
        self._timer = self.loop.call_later(delay_s, self._resume)

    def _readable(self) -> None:
        now = self.loop.time()
        if not may_accept(self.health.connections(), self.health.index):
            if self._deferred_since is None:
                self._deferred_since = now
            if now - self._deferred_since < MAX_DEFER_S:
                self._pause(DEFER_S)
                return
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as exc:
            log.warning("accept on the shared socket failed: %s", exc)
            self._pause(ACCEPT_ERROR_PAUSE_S)
            return
        self._deferred_since = None
        # Counted at once, so the next readiness (and the other workers) see it.
        self.health.add_connections(1)
        conn.setblocking(False)
        task = self.loop.create_task(self._connect(conn))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(
                lambda: HttpConnection(self.server, counted=True), conn
            )
        except Exception:
            self.health.add_connections(-1)
            conn.close()
            raise


class HttpServer:
    """Serves `app` on the sockets given to `serve` until told to exit."""

    def __init__(
        self,
        app: InstanceApp,
        limits: HttpLimits,
        shared: SharedHealth | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        # Several workers: the Unix socket is shared, accepted through `SharedAcceptor`.
        self.shared = shared if shared is not None and shared.count > 1 else None
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.started = False
        self.date_header = b""
        self._exit = asyncio.Event()
        self._force = False
        self._listeners: list[asyncio.AbstractServer | SharedAcceptor] = []
        self._refresh_date()

    @property
    def should_exit(self) -> bool:
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit.set()

    def opened(self, connection: HttpConnection) -> None:
        self.connections.add(connection)

    def closed(self, connection: HttpConnection) -> None:
        self.connections.discard(connection)
        if connection.counted and self.shared is not None:
            self.shared.add_connections(-1)

    def fallback(self, connection: HttpConnection, request: Request) -> Coroutine[Any, Any, None]:
        return run_asgi(connection, request)

    def stream(
        self, connection: HttpConnection, request: Request, reply: Reply
    ) -> Coroutine[Any, Any, None]:
        return stream_reply(connection, request, reply)

    async def serve(self, sockets: Sequence[socket.socket], grace_s: float) -> None:
        """Listen on `sockets`, serve until SIGTERM/SIGINT or `should_exit`, then drain
        for up to `grace_s`."""
        self._install_signals()
        for sock in sockets:
            await self._listen(sock)
        self.started = True
        interval_s = min(1.0, self.limits.header_timeout_s / 4, self.limits.body_timeout_s / 4)
        while not self.should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), interval_s)
            self._sweep()
        await self._shutdown(grace_s)

    async def _listen(self, sock: socket.socket) -> None:
        if sock.family == socket.AF_UNIX:
            if self.shared is not None:
                acceptor = SharedAcceptor(self, sock, self.shared)
                acceptor.start()
                self._listeners.append(acceptor)
                return
            server = await self.loop.create_unix_server(lambda: HttpConnection(self), sock=sock)
        else:
            server = await self.loop.create_server(lambda: HttpConnection(self), sock=sock)
        self._listeners.append(server)

    def _install_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self.loop.add_signal_handler(signum, self._on_signal)

    def _on_signal(self) -> None:
        if self.should_exit:
            self._force = True  # a second signal: stop waiting for requests
        self.should_exit = True

    def _refresh_date(self) -> None:
        self.date_header = b"date: " + formatdate(usegmt=True).encode() + b"\r\n"

    def _sweep(self) -> None:
        self._refresh_date()
        now = self.loop.time()
        for connection in list(self.connections):
            if connection.deadline <= now:
                connection.expire(now)

    async def _shutdown(self, grace_s: float) -> None:
        for listener in self._listeners:
            if isinstance(listener, SharedAcceptor):
                listener.stop()
            else:
                listener.close()
        for connection in list(self.connections):
            connection.finish()
        deadline = self.loop.time() + grace_s
        while (self.connections or self.tasks) and self.loop.time() < deadline:
            if self._force:
                break
            await asyncio.sleep(0.05)
        for task in list(self.tasks):
            task.cancel()
        for connection in list(self.connections):
            connection.abort()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
