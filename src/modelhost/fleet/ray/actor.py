"""The node's side of a Ray-placed instance: a Ray actor that runs the instance process.

The actor holds the instance's share of the node (its resource request) for as long as the
process lives, starts the process on the node's own address, and stops it. The instance
watches the actor's pid (`MH_INSTANCE_PARENT_PID`), so a dead actor, worker or raylet takes
its instance with it, and the gateway sees the actor's death through Ray.

An endpoint's instance actor is detached and named (`placement.actor_name`): it outlives
the gateway that created it, and the next leader finds it, asks it to `describe` itself
and adopts it (fleet/ray/provider.py).

This module is imported on the nodes: it needs only the standard library,
`fleet/environment.py` (the allow-list of what an instance inherits) and
`fleet/ray/artifacts.py` (the node fetches the model from the artifact store).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from modelhost.fleet.environment import inherited_environment
from modelhost.fleet.ray.artifacts import NodeModel, node_argv, node_model

SUPERVISOR = "modelhost.container.supervise"


class InstanceActor:
    """One instance process on this node. Ray makes it an actor (`ray.remote`) with the
    instance's resource request; its methods run in threads (`max_concurrency`) so `wait`
    can block while `stop` is called."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._info: dict[str, Any] = {}

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
        # The node's own environment (its Python, its PATH), never the gateway's.
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
        if launch["builtin"] or argv[1:3] == ["-m", SUPERVISOR]:
            # `python -m modelhost.container` (or its supervisor of a user's server) with
            # this node's interpreter.
            argv[0] = sys.executable
        log_path = Path(launch["log_path"])
        self._proc = spawn_instance(argv, env, model, log_path)
        self._info = {
            "host": host,
            "port": port,
            "pid": self._proc.pid,
            "node_id": ray.get_runtime_context().get_node_id(),
            "instance_id": launch.get("instance_id", ""),
            "fingerprint": launch.get("fingerprint", ""),
            "log_path": str(log_path),
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
            return self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

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


def spawn_instance(
    argv: list[str], env: dict[str, str], model: NodeModel, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start the instance process in its model directory, its output in `log_path`.

    The process holds the lease on its node cache entry (an inherited descriptor): the
    entry is not evicted while it, or a child of it, lives, and is free again once it is
    gone, kill -9 included. The actor keeps no copy."""
    held = model.lease
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            if model.note:
                log.write(model.note.encode() + b"\n")
                log.flush()
            return subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(model.model_dir),
                start_new_session=True,
                pass_fds=(held.fd,) if held is not None else (),
            )
    finally:
        if held is not None:
            held.close()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
