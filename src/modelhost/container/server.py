"""Process entry point: the instance's own HTTP server on uvloop + httptools
(container/http_server.py; uvicorn with `MH_INSTANCE_HTTP_SERVER=uvicorn`), no access log.

Start-up order matters for the contract: the socket listens first (SageMaker wants a
connection accepted within 250 ms), then the model loads in the worker thread while
/ping answers 503. A watchdog ends the process when its parent (the gateway) is gone,
so an instance never outlives a killed gateway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from modelhost.container.app import InstanceApp
from modelhost.container.config import ConfigError, InstanceConfig
from modelhost.container.health import SharedHealth
from modelhost.container.listen import remove_unix_socket, tcp_listener, unix_listener
from modelhost.container.process import process_alive

log = logging.getLogger("modelhost.container")

PARENT_POLL_S = 0.5
# After the parent is gone, graceful shutdown gets this long before a hard exit (a
# prediction still running in the worker thread would otherwise hold the exit).
HARD_EXIT_AFTER_S = 1.5
# Longer than any client pool's idle timeout, so the server is never the side that
# closes an idle keep-alive connection while the gateway starts reusing it.
KEEP_ALIVE_S = 75
# SageMaker sends SIGKILL 30 s after SIGTERM; finish in-flight requests before that.
GRACEFUL_SHUTDOWN_S = 25


async def watch_parent(pid: int, server: object) -> None:
    """Ask uvicorn to exit when `pid` is gone; hard-exit if that takes too long."""
    was_child = os.getppid() == pid
    while not getattr(server, "should_exit", False):
        # A reparented child (getppid changed) has lost its parent even if the pid was
        # reused by an unrelated process since.
        if not process_alive(pid) or (was_child and os.getppid() != pid):
            log.warning("parent process %d is gone: shutting down", pid)
            server.should_exit = True  # type: ignore[attr-defined]
            timer = threading.Timer(HARD_EXIT_AFTER_S, os._exit, args=(0,))
            timer.daemon = True
            timer.start()
            return
        await asyncio.sleep(PARENT_POLL_S)


async def _load_when_listening(server: object, app: InstanceApp) -> None:
    while not getattr(server, "started", False):
        if getattr(server, "should_exit", False):
            return
        await asyncio.sleep(0.005)
    await app.load()


def build_app(config: InstanceConfig, health: SharedHealth | None = None) -> InstanceApp:
    """The instance's ASGI app: one model, or the multi-model `/models` API mounted on it."""
    if not config.multi_model:
        return InstanceApp(config, health)
    from modelhost.container.multimodel import MultiModelHost

    # One worker thread for both: the framework import at start-up, then loads and
    # large predictions, as in a single-model instance.
    executor = ThreadPoolExecutor(1, thread_name_prefix="predict")
    return InstanceApp(config, health, MultiModelHost(config, executor), executor)


async def serve(
    config: InstanceConfig,
    sockets: list[socket.socket] | None = None,
    health: SharedHealth | None = None,
) -> int:
    """Run the instance (or one worker of it, on `sockets` bound by the supervisor)
    until SIGTERM/SIGINT or parent death; returns the exit code."""
    if sockets is None and config.unix_socket is not None:
        # The port for the contract, the Unix socket for the gateway on this machine.
        sockets = [tcp_listener(config.host, config.port), unix_listener(config.unix_socket)]
    app = build_app(config, health)
    if config.http_server == "uvicorn":
        return await _serve_uvicorn(config, app, sockets)
    from modelhost.container.http_connection import HttpLimits
    from modelhost.container.http_server import HttpServer

    server = HttpServer(app, HttpLimits(keep_alive_s=KEEP_ALIVE_S), shared=health)
    tasks = _background(config, server, app)
    try:
        if sockets is None:
            sockets = [tcp_listener(config.host, config.port)]
        await server.serve(sockets, GRACEFUL_SHUTDOWN_S)
    except OSError as exc:  # the port is taken: the fleet starts a replacement
        log.error("cannot listen on %s:%d: %s", config.host, config.port, exc)
    finally:
        for task in tasks:
            task.cancel()
        app.close()
    return 0 if server.started else 1


def _background(
    config: InstanceConfig, server: object, app: InstanceApp
) -> list[asyncio.Task[None]]:
    """The model load (once the sockets listen) and the watch on the gateway's pid."""
    tasks = [asyncio.create_task(_load_when_listening(server, app))]
    if config.parent_pid:
        tasks.append(asyncio.create_task(watch_parent(config.parent_pid, server)))
    return tasks


async def _serve_uvicorn(
    config: InstanceConfig, app: InstanceApp, sockets: list[socket.socket] | None
) -> int:
    """The instance on uvicorn (`MH_INSTANCE_HTTP_SERVER=uvicorn`), as before its own
    server (container/http_server.py)."""
    import uvicorn

    from modelhost.container.http_protocol import one_write

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            loop="none",  # we already run inside uvloop (see main)
            # httptools, each small response written in one piece (container/http_protocol.py)
            http=one_write(),
            lifespan="on",
            access_log=False,
            log_config=None,
            log_level=_uvicorn_level(config.log_level),
            server_header=False,
            # Only the gateway calls an instance, over loopback: no X-Forwarded-* to trust,
            # and skipping the middleware saves ~1% of the instance's CPU per request.
            proxy_headers=False,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
    )
    tasks = _background(config, server, app)
    try:
        await server.serve(sockets=sockets)
    finally:
        for task in tasks:
            task.cancel()
        app.close()
    return 0 if server.started else 1


def run_worker(config: InstanceConfig, sockets: list[socket.socket], health: SharedHealth) -> int:
    """One worker process of a several-worker instance (`container.workers`)."""
    import uvloop

    return uvloop.run(serve(config, sockets=sockets, health=health))


def _uvicorn_level(level: str) -> str:
    return level if level in ("critical", "error", "warning", "info", "debug", "trace") else "info"


def setup_logging(level: str) -> None:
    """Plain stderr logging; the parent collects it as the instance's log stream."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(
        level=numeric if isinstance(numeric, int) else logging.INFO,
        format="%(asctime)s %(levelname)s [instance %(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.captureWarnings(True)


def pin_cpus(cpus: tuple[int, ...]) -> None:
    """Run on the instance's CPU share, set before any thread or worker process exists so
    that all of them inherit it (the gateway sets it from the instance type's vCPUs)."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as exc:  # a core this machine does not have: run unpinned
        log.warning("cannot pin the instance to cores %s: %s", cpus, exc)
        return
    log.info("instance pinned to cores %s", ",".join(map(str, cpus)))


def main() -> int:
    """`python -m modelhost.container`: configuration comes from the environment."""
    try:
        config = InstanceConfig.from_env()
    except ConfigError as exc:
        print(f"modelhost.container: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    pin_cpus(config.cpus)
    try:
        return _run(config)
    finally:
        remove_unix_socket(config.unix_socket)


def _run(config: InstanceConfig) -> int:
    if config.workers > 1:
        from modelhost.container.workers import supervise

        log.info("instance starting %d workers on %s:%d", config.workers, config.host, config.port)
        return supervise(config, run_worker)
    import uvloop

    log.info(
        "instance starting on %s:%d (model %s, runtime %s)",
        config.host,
        config.port,
        config.model_dir,
        config.runtime,
    )
    return uvloop.run(serve(config))
