"""The node's side of a Ray-placed instance: a Ray actor that runs the instance process.

The actor holds the instance's share of the node (its resource request) for as long as the
process lives, starts the process on the node's own address, and stops it. The instance
watches the actor's pid (`MH_INSTANCE_PARENT_PID`), so a dead actor, worker or raylet takes
its instance with it, and the gateway sees the actor's death through Ray.

An endpoint's instance actor is detached and named (`placement.actor_name`): it outlives
the gateway that created it, and the next leader finds it, asks it to `describe` itself
and adopts it (fleet/ray/provider.py).

The instance's output goes to its log file in the gateway's logs directory when this node
sees that file (one machine, or a shared path), else into a bounded buffer the gateway
pulls with `read_log` (fleet/ray/logship.py). A script's `requirements.txt` installs and
compiled tree models go to directories on this node (`NODE_LOCAL_DIRS`), never to the
gateway's home.

This module is imported on the nodes: it needs only the standard library,
`fleet/environment.py` (the allow-list of what an instance inherits),
`fleet/ray/artifacts.py` (the node fetches the model from the artifact store) and
`fleet/ray/logship.py`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from modelhost.fleet.environment import inherited_environment
from modelhost.fleet.ray.artifacts import NodeModel, node_argv, node_local_dir, node_model
from modelhost.fleet.ray.logship import SHIP_BYTES, LogBatch, LogBuffer, sees_gateway_log

SUPERVISOR = "modelhost.container.supervise"
# The instance's caches that the gateway points at its own home: on a node, the node's.
NODE_LOCAL_DIRS = {
    "MH_INSTANCE_PACKAGES_DIR": "packages",
    "MH_INSTANCE_COMPILE_CACHE_DIR": "compiled",
}
# How long `wait` and `stop` give the pipe to deliver an exited instance's last output
# (a child that outlives it may hold the pipe open).
PUMP_JOIN_S = 5.0


class InstanceActor:
    """One instance process on this node. Ray makes it an actor (`ray.remote`) with the
    instance's resource request; its methods run in threads (`max_concurrency`) so `wait`
    can block while `stop` is called."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._info: dict[str, Any] = {}
        self._logs: LogBuffer | None = None
        self._pump: threading.Thread | None = None

    def start(self, launch: dict[str, Any]) -> dict[str, Any]:
        """Start the instance process on this node; where it listens and runs."""
        import ray

        host = ray.util.get_node_ip_address()
        placeholder = Path(launch["model_dir"])
        try:
            # Fetched by this node from the artifact store (fleet/ray/artifacts.py).
            model = node_model(launch.get("artifact"), placeholder, launch["env"], host)
        except Exception as exc:  # ArtifactError, OSError: the reason, not a Ray traceback
            return {"error": f"node {host} could not get the model: {exc}"}
        try:
            argv = node_argv(list(launch["argv"]), placeholder, model.model_dir)
        except OSError as exc:
            if model.lease is not None:
                model.lease.close()
            return {"error": f"node {host} cannot start the server: {exc}"}
        port = _free_port(host)
        env = instance_env(launch, model, host, port)
        if launch["builtin"] or argv[1:3] == ["-m", SUPERVISOR]:
            # `python -m modelhost.container` (or its supervisor of a user's server) with
            # this node's interpreter.
            argv[0] = sys.executable
        log_path = Path(launch["log_path"])
        if ships_log(launch, log_path):
            self._logs = LogBuffer(int(launch["log_buffer_bytes"]))
        self._proc = spawn_instance(argv, env, model, log_path, self._logs)
        if self._logs is not None:
            assert self._proc.stdout is not None
            self._pump = self._logs.follow(self._proc.stdout)
        self._info = {
            "host": host,
            "port": port,
            "pid": self._proc.pid,
            "node_id": ray.get_runtime_context().get_node_id(),
            "instance_id": launch.get("instance_id", ""),
            "fingerprint": launch.get("fingerprint", ""),
            "log_path": str(log_path),
            "ships_log": self._logs is not None,
            "started_s": time.time(),
        }
        return dict(self._info)

    def describe(self) -> dict[str, Any]:
        """What `start` answered, and whether the process still runs (for adoption)."""
        return {**self._info, "running": self._proc is not None and self._proc.poll() is None}

    def wait(self, timeout_s: float | None = None) -> int | None:
        """Block until the process exits (its status) or `timeout_s` passes (None). The
        wait is bounded so that the calls of gateways that died meanwhile do not hold
        the actor's threads for good."""
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._join_pump()
        return code

    def read_log(self, since: int | None, max_bytes: int = SHIP_BYTES) -> LogBatch | None:
        """The instance's output from offset `since` (see fleet/ray/logship.py); None when
        it goes to the gateway's log file directly."""
        return self._logs.read(since, max_bytes) if self._logs is not None else None

    def _join_pump(self) -> None:
        if self._pump is not None:
            self._pump.join(PUMP_JOIN_S)

    def stop(self, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after `grace_s`; whatever the process started goes too."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._join_pump()


def instance_env(launch: dict[str, Any], model: NodeModel, host: str, port: int) -> dict[str, str]:
    """The instance's environment on this node: the node's own (its Python, its PATH),
    never the gateway's, then the launch's, the model's and where it listens."""
    env = inherited_environment(os.environ)
    env.update(launch["env"])
    env.update(model.env)
    env.update(
        {
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "MH_INSTANCE_HOST": host,
            "MH_INSTANCE_PARENT_PID": str(os.getpid()),
        }
    )
    for variable, name in NODE_LOCAL_DIRS.items():
        if variable in env:
            # On this node: nodes never share (or need) the gateway's home.
            env[variable] = str(node_local_dir(launch.get("node_cache_dir"), host, name))
    return env


def ships_log(launch: dict[str, Any], log_path: Path) -> bool:
    """Whether the instance's output is shipped to the gateway (`ray_instance_logs`:
    `ship`, or `auto` and this node does not see the gateway's log file)."""
    mode = launch.get("log_mode")
    return mode == "ship" or (mode == "auto" and not sees_gateway_log(log_path, launch["log_head"]))


def spawn_instance(
    argv: list[str],
    env: dict[str, str],
    model: NodeModel,
    log_path: Path,
    buffer: LogBuffer | None = None,
) -> subprocess.Popen[bytes]:
    """Start the instance process in its model directory, its output in `log_path` (or,
    with a `buffer`, in a pipe: the caller pumps its `stdout` into the buffer).

    The process holds the lease on its node cache entry (an inherited descriptor): the
    entry is not evicted while it, or a child of it, lives, and is free again once it is
    gone, kill -9 included. The actor keeps no copy."""
    held = model.lease
    note = model.note.encode() + b"\n" if model.note else b""
    try:
        if buffer is not None:
            buffer.append(note)
            return _popen(argv, env, model, subprocess.PIPE)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(note)
            log.flush()
            return _popen(argv, env, model, log)
    finally:
        if held is not None:
            held.close()


def _popen(argv: list[str], env: dict[str, str], model: NodeModel, out: Any) -> Any:
    held = model.lease
    return subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=str(model.model_dir),
        start_new_session=True,
        pass_fds=(held.fd,) if held is not None else (),
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
