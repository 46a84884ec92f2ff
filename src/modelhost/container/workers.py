"""Several worker processes in one instance (`SAGEMAKER_MODEL_SERVER_WORKERS` > 1).

The process the gateway started becomes a small supervisor: it binds one listening
socket per worker on the instance port with SO_REUSEPORT (so the kernel spreads
connections over the workers; a single shared socket lets one busy process take most
keep-alive connections while the other core idles), forks the workers, and hands each
its socket. Binding before forking keeps the contract's "accepts at once" promise. A Unix
socket (`MH_INSTANCE_UNIX_SOCKET`, the gateway's hop) is one listening socket all workers
share, bound once here; each worker's server accepts from it one connection at a time,
leaving a new connection to the worker that holds the fewest (container/http_server.py),
so the gateway's connections spread over the workers as the kernel spreads TCP ones.

Each worker loads the model itself and serves the whole contract. Health is shared: a
small anonymous shared-memory table holds every worker's state, and `/ping` on any
worker answers for the instance — 200 only when all workers are ready, 500 (with the
reason) when any failed to load, 503 while any is still loading.

Lifecycle rules (no orphans, and a broken instance is visible to the gateway):
- SIGTERM/SIGINT to the supervisor is forwarded to every worker, which drains and exits;
  the supervisor exits 0 when all have.
- A worker that exits on its own (crash, OOM kill) ends the instance: the others get
  SIGTERM and the supervisor exits 1, so the gateway sees a dead instance and replaces
  it, as it does for any dead instance (a half-capacity instance would look healthy).
- Workers die with the supervisor (PR_SET_PDEATHSIG, and they watch its pid), and the
  supervisor stops them when the gateway (`MH_INSTANCE_PARENT_PID`) is gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import time
from collections.abc import Callable

from modelhost.container.config import InstanceConfig
from modelhost.container.health import SharedHealth
from modelhost.container.listen import unix_listener
from modelhost.container.process import die_with_parent, process_alive

log = logging.getLogger("modelhost.container")

POLL_S = 0.2
STOP_GRACE_S = 28.0  # workers drain for up to 25 s (server.GRACEFUL_SHUTDOWN_S)


def reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


# Runs one worker on its sockets until it stops; returns the exit code (server.run_worker).
RunWorker = Callable[[InstanceConfig, list[socket.socket], SharedHealth], int]


def supervise(config: InstanceConfig, run_worker: RunWorker) -> int:
    """Fork `config.workers` workers on the instance port, each running `run_worker`
    (passed in, so this module does not import the server), and watch them."""
    count = config.workers
    socks = [reuseport_socket(config.host, config.port) for _ in range(count)]
    # One Unix socket shared by the workers (AF_UNIX has no SO_REUSEPORT): their servers
    # spread its connections (container/http_server.py).
    unix = [unix_listener(config.unix_socket)] if config.unix_socket is not None else []
    health = SharedHealth(count)
    me = os.getpid()
    worker_config = dataclasses.replace(config, parent_pid=me)
    pids: list[int] = []
    for index, sock in enumerate(socks):
        pid = os.fork()
        if pid == 0:  # worker: keep only its own socket
            code = 1
            try:
                for other in socks:
                    if other is not sock:
                        other.close()
                health.index = index
                die_with_parent()
                code = run_worker(worker_config, [sock, *unix], health)
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(code)
        pids.append(pid)
        sock.close()  # the worker owns it now; a dead worker's socket must not linger
    for shared in unix:
        shared.close()
    log.info("instance supervisor %d started %d workers: %s", me, count, pids)
    return _watch(config, pids)


def _watch(config: InstanceConfig, pids: list[int]) -> int:
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    live = set(pids)
    code = 0
    while live and not stopping:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid in live:
            live.discard(pid)
            log.error(
                "worker %d exited (%s): stopping the instance so it is replaced",
                pid,
                os.waitstatus_to_exitcode(status),
            )
            code = 1
            break
        if config.parent_pid and not process_alive(config.parent_pid):
            log.warning("parent process %d is gone: stopping the workers", config.parent_pid)
            break
        time.sleep(POLL_S)
    _stop(live)
    return code


def _stop(live: set[int]) -> None:
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while live and time.monotonic() < deadline:
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid in live:
            live.discard(pid)
        elif pid == 0:
            time.sleep(0.05)
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
