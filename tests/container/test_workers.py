"""`SAGEMAKER_MODEL_SERVER_WORKERS=2`: two worker processes behind one port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.container.instance_support import Instance, write_booster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WORKERS = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _wait_gone(pids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            return
        time.sleep(0.05)
    raise AssertionError(f"workers still running: {pids}")


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


def test_two_workers_serve_and_stop_on_sigterm(
    tmp_path: Path, trained: tuple[Any, np.ndarray]
) -> None:
    booster, rows = trained
    model_dir = write_booster(tmp_path / "model", booster)
    with Instance(model_dir, env=WORKERS) as instance:
        assert instance.wait_ping() == (200, {"status": "Healthy"})
        workers = _children(instance.process.pid)
        assert len(workers) == 2
        # New connections spread over both workers (SO_REUSEPORT); each answers right.
        expected = instance.invoke(_csv(rows[:3]), "text/csv")
        assert expected[0] == 200
        for _ in range(20):
            assert instance.invoke(_csv(rows[:3]), "text/csv")[2] == expected[2]
        instance.process.send_signal(signal.SIGTERM)
        assert instance.process.wait(timeout=40) == 0
        _wait_gone(workers)


def test_a_dead_worker_ends_the_instance(tmp_path: Path, trained: tuple[Any, np.ndarray]) -> None:
    model_dir = write_booster(tmp_path / "model", trained[0])
    with Instance(model_dir, env=WORKERS) as instance:
        assert instance.wait_ping()[0] == 200
        workers = _children(instance.process.pid)
        os.kill(workers[0], signal.SIGKILL)
        # The supervisor stops the other worker and exits non-zero, so the gateway
        # sees a dead instance and replaces it (no half-capacity instance).
        assert instance.process.wait(timeout=40) == 1
        _wait_gone(workers)
        assert "stopping the instance" in instance.log()


def test_workers_exit_when_gateway_dies(tmp_path: Path, trained: tuple[Any, np.ndarray]) -> None:
    parent = subprocess.Popen(["sleep", "60"])
    try:
        model_dir = write_booster(tmp_path / "model", trained[0])
        env = {**WORKERS, "MH_INSTANCE_PARENT_PID": str(parent.pid)}
        with Instance(model_dir, env=env) as instance:
            assert instance.wait_ping()[0] == 200
            workers = _children(instance.process.pid)
            parent.kill()
            instance.process.wait(timeout=40)
            _wait_gone(workers)
            assert "parent process" in instance.log()
    finally:
        parent.kill()
        parent.wait()


def test_supervisor_killed_takes_workers_down(
    tmp_path: Path, trained: tuple[Any, np.ndarray]
) -> None:
    model_dir = write_booster(tmp_path / "model", trained[0])
    with Instance(model_dir, env=WORKERS) as instance:
        assert instance.wait_ping()[0] == 200
        workers = _children(instance.process.pid)
        instance.process.kill()  # SIGKILL: no chance to stop them itself
        instance.process.wait(timeout=10)
        _wait_gone(workers)


def test_ping_failed_when_model_cannot_load(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "xgboost-model").write_bytes(b"not a model")
    with Instance(model_dir, env=WORKERS) as instance:
        status, body = instance.wait_ping()
        assert status == 500 and body["status"] == "Failed"
        assert "xgboost-model" in body["reason"]


def _socket_fds(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(fd).startswith("socket:")
    return count


def test_workers_share_one_unix_socket_and_its_connections(
    tmp_path: Path, trained: tuple[Any, np.ndarray]
) -> None:
    booster, rows = trained
    model_dir = write_booster(tmp_path / "model", booster)
    path = tmp_path / "i.sock"
    with Instance(model_dir, env={**WORKERS, "MH_INSTANCE_UNIX_SOCKET": str(path)}) as instance:
        assert instance.wait_ping()[0] == 200
        workers = _children(instance.process.pid)
        assert len(workers) == 2
        before = [_socket_fds(pid) for pid in workers]
        body = _csv(rows[:2])
        request = (
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        )
        conns = []
        try:
            # One at a time, as a pool opens them: each new one goes to the worker
            # holding fewer (container/http_server.py), so both serve.
            for _ in range(6):
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.settimeout(30)
                conn.connect(str(path))
                conn.sendall(request)
                assert conn.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
                conns.append(conn)
            gained = [_socket_fds(pid) - was for pid, was in zip(workers, before, strict=True)]
            assert min(gained) >= 2, gained  # 3 and 3 (a closing ping connection may hide one)
        finally:
            for conn in conns:
                conn.close()
        instance.process.send_signal(signal.SIGTERM)
        assert instance.process.wait(timeout=40) == 0
    assert not path.exists()
