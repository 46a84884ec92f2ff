"""The zygote: a warm process per runtime that forks new instances (`fleet/zygote.py`).

A fresh instance spends most of its start importing Python, uvicorn, numpy and the
framework (about a second); its model loads in milliseconds. The zygote does the imports
once, then waits on a socket the gateway holds. For each request (one JSON line: the
instance's environment, working directory, log file and memory limit) it forks a child
that becomes the instance: its own session, its log as stdout/stderr, its environment
and limit, then the instance server's `main()` (which loads only the model). The reply
is the child's pid. The zygote ends when the gateway's end of the socket closes. Every
built-in-runtime instance (real-time, serverless, transform job, multi-model) is forked
from here when it can be (`fleet/zygote.py` says when not).

Forking is only safe while the zygote has a single thread (a thread's locks would be
copied held), so the numerical libraries are imported with one thread each (OpenBLAS
and OpenMP start their pools at import or on first use, never here) and the zygote
reports its thread count when ready: the gateway forks from it only when that is 1.

This module reads and sets `os.environ` for the child only: the child's environment is
what the gateway's provider would have given a spawned instance (fleet/local.py).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import resource
import signal
import socket
import sys
import traceback
from io import BufferedIOBase
from typing import Any

# Imported here so a child has them already: the server, its HTTP stack, the runtimes.
PRELOAD = (
    "modelhost.container.server",
    "modelhost.container.app",
    "modelhost.container.multimodel",  # a multi-model instance's /models API
    "modelhost.container.http_server",
    "modelhost.frameworks.registry",
    "uvicorn",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.websockets.auto",  # uvicorn.Config.load() imports it
    "uvloop",
    "numpy",
)
# The framework each runtime imports to load a model ("auto" guesses among them).
FRAMEWORKS = {
    "xgboost": ("modelhost.frameworks.xgboost", "xgboost"),
    "sklearn": ("modelhost.frameworks.sklearn", "sklearn"),
    "lightgbm": ("modelhost.frameworks.lightgbm", "lightgbm"),
    "auto": ("modelhost.frameworks.xgboost", "modelhost.frameworks.sklearn", "xgboost"),
}


def preload(runtime: str) -> list[str]:
    """Import what an instance of `runtime` imports; returns what could not be."""
    missing = []
    for name in (*PRELOAD, *FRAMEWORKS.get(runtime, ())):
        try:
            importlib.import_module(name)
        except Exception:  # an optional framework: its instances start the slow way
            missing.append(name)
    return missing


def thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _child(request: dict[str, Any], channel: socket.socket) -> None:
    """Become the instance; never returns."""
    code = 1
    try:
        channel.close()
        os.setsid()  # its own process group: stopping it stops what it starts
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote ignores them
        log_fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.close(null_fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # What a spawned instance (`python -m modelhost.container`) sees as its argv.
        sys.argv = [os.path.join(os.path.dirname(__file__), "__main__.py")]
        limit = request.get("memory_limit_bytes")
        if limit:
            # Before the model loads (fleet/limits.py says why RLIMIT_DATA).
            resource.setrlimit(resource.RLIMIT_DATA, (int(limit), int(limit)))
        from modelhost.container.server import main

        code = main()
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _send(out: BufferedIOBase, message: dict[str, Any]) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def serve(channel: socket.socket, runtime: str) -> int:
    missing = preload(runtime)
    # What is imported now lives as long as every child: out of the collector's sight, a
    # child's collections stay short and do not write to (and so copy) the shared pages.
    gc.collect()
    gc.freeze()
    # Children are reaped by the kernel: the gateway watches them through pidfds.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    stream = channel.makefile("rwb")
    _send(stream, {"ready": True, "threads": thread_count(), "missing": missing})
    for line in stream:
        request = json.loads(line)
        if thread_count() != 1:
            _send(stream, {"error": f"the zygote has {thread_count()} threads; not forking"})
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, channel)
        _send(stream, {"pid": pid})
    return 0  # the gateway closed its end: it is gone or shutting down


def main() -> int:
    """`python -m modelhost.container.zygote FD RUNTIME` (started by fleet/zygote.py)."""
    fd, runtime = int(sys.argv[1]), sys.argv[2]
    with socket.socket(fileno=fd) as channel:
        return serve(channel, runtime)


if __name__ == "__main__":
    raise SystemExit(main())
