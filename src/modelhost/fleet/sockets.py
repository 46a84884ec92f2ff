"""Where built-in instances on this machine put their Unix domain sockets.

The gateway → instance hop of a local built-in runtime goes over a Unix domain socket
instead of loopback TCP (fleet/http1.py; docs/performance.md has the figures): the
instance listens on both, its TCP port staying the container contract's
(`SAGEMAKER_BIND_TO_PORT`) for everything that reaches it from elsewhere (another
gateway reading the leader's routing snapshots, a user's curl). A user's own server
(BYOC) only speaks TCP and gets no socket. An instance with several workers shares one
socket among them: AF_UNIX has no SO_REUSEPORT, and with uvicorn's accept the first worker
to wake took all 32 of 32 connections (libuv accepts every pending connection at once),
so the instance's own server accepts one at a time and leaves each new connection to the
worker holding the fewest (container/http_server.py). An instance told to run on uvicorn
(`MH_INSTANCE_HTTP_SERVER=uvicorn`) with several workers stays on TCP, where the kernel's
SO_REUSEPORT spreads the connections.

The sockets live in `<home>/sockets/` (mode 0700, the sockets themselves 0600: only the
gateway's user may talk to an instance). A socket path must fit in `sun_path` (108
bytes); when `<home>` is too deep for that, or its file system cannot hold a socket, a
private directory under the system's temporary directory is used instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path

from modelhost.container.config import ConfigError, InstanceConfig

ENV = "MH_INSTANCE_UNIX_SOCKET"

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_PATH_BYTES = 107
# "i-" + 12 hex digits + ".sock"
_NAME_BYTES = len("i-000000000000.sock")


class SocketDir:
    """Hands out one socket path per instance in a private directory (made on first use)."""

    def __init__(self, preferred: Path) -> None:
        self.preferred = preferred
        self._dir: Path | None = None
        self._given: set[str] = set()

    def path_for(self, instance_id: str) -> str:
        """The socket path of `instance_id` (the instance creates the socket)."""
        path = str(self._directory() / f"{instance_id}.sock")
        self._given.add(path)
        return path

    def clear(self) -> None:
        """Last-resort cleanup (the gateway exits): every socket handed out, and the
        temporary directory if one was used."""
        for path in self._given:
            remove(path)
        self._given.clear()
        if self._dir is not None and self._dir != self.preferred:
            with contextlib.suppress(OSError):
                self._dir.rmdir()

    def _directory(self) -> Path:
        if self._dir is None or not self._dir.is_dir():
            self._dir = self._make()
        return self._dir

    def _make(self) -> Path:
        if len(os.fsencode(self.preferred)) + 1 + _NAME_BYTES <= MAX_PATH_BYTES:
            self.preferred.mkdir(parents=True, exist_ok=True)
            # mkdir's mode is masked by the umask: set it, whatever made the directory.
            os.chmod(self.preferred, 0o700)
            if _can_bind(self.preferred):
                return self.preferred
        return Path(tempfile.mkdtemp(prefix="modelhost-sockets-"))  # 0700 by mkdtemp


def _can_bind(directory: Path) -> bool:
    """Whether sockets can be made here (some network and shared-folder file systems
    cannot hold one; an instance that cannot bind its socket would not start)."""
    probe = directory / f".probe-{os.getpid()}.sock"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(probe))
        return True
    except OSError:
        return False
    finally:
        remove(str(probe))


def workers(env: Mapping[str, str]) -> int:
    """The worker processes an instance with this environment will run (the instance's
    own rule: container/config.py)."""
    try:
        return InstanceConfig.from_env(env).workers
    except ConfigError:
        return 1  # the instance will not start; its log will say why


def unix_socket_ok(env: Mapping[str, str]) -> bool:
    """Whether an instance with this environment spreads its Unix socket's connections over
    its workers: one worker, or several on the instance's own server (not uvicorn)."""
    try:
        config = InstanceConfig.from_env(env)
    except ConfigError:
        return False  # the instance will not start; its log will say why
    return config.workers == 1 or config.http_server != "uvicorn"


def remove(path: str | None) -> None:
    """Remove an instance's socket file (the instance removes it when it exits cleanly;
    this covers one that was killed)."""
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
