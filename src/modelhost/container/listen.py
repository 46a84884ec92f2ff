"""The instance's listening sockets: its TCP port and, for the gateway on this machine, a
Unix domain socket (`MH_INSTANCE_UNIX_SOCKET`; fleet/sockets.py says why and where).

Both are bound before the model loads, so either answers `/ping` with 503 at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

BACKLOG = 2048


def tcp_listener(host: str, port: int) -> socket.socket:
    """The contract's port, bound as uvicorn binds it (SO_REUSEADDR, so a restarted
    instance may take a port whose old connections linger in TIME_WAIT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(False)
    return sock


def unix_listener(path: Path) -> socket.socket:
    """A listening Unix domain socket at `path`, readable and writable by this user only
    (0600; its directory is 0700 too). A stale file of an earlier process is replaced."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def remove_unix_socket(path: Path | None) -> None:
    """Remove the socket file when the instance exits (a killed one is cleaned up by the
    gateway)."""
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
