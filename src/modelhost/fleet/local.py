"""Instance provider: child processes on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from modelhost.fleet import cpu_share, sockets
from modelhost.fleet.environment import inherited_environment
from modelhost.fleet.exits import ExitWatch
from modelhost.fleet.instance import Instance, LaunchSpec
from modelhost.fleet.limits import MemoryLimit, limit_process
from modelhost.fleet.provider import DiesWithGateway
from modelhost.resources import gpus
from modelhost.resources.status import InstanceStatus

log = logging.getLogger("modelhost.fleet")


def free_port() -> int:
    """A currently free loopback port. The child binds it a moment later; if another
    process takes it first the child fails to start and the fleet starts a replacement."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalProcessProvider(DiesWithGateway):
    """Starts instances as child processes and stops them with SIGTERM, then SIGKILL.

    Instances watch the gateway's pid (MH_INSTANCE_PARENT_PID) and exit when it is gone, so
    a gateway killed with -9 leaves no orphans behind.
    """

    def __init__(
        self, cpus: cpu_share.CpuShares | None = None, socket_dir: Path | None = None
    ) -> None:
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._limits: dict[str, MemoryLimit] = {}
        self._gpu_starts = 0
        self._exits = ExitWatch()
        # Each instance's vCPUs as a rotating set of this machine's cores.
        self.cpus = cpus or cpu_share.CpuShares()
        # Built-in instances also listen on a Unix domain socket here (fleet/sockets.py);
        # None: TCP only.
        self.sockets = None if socket_dir is None else sockets.SocketDir(socket_dir)

    def start(self, spec: LaunchSpec) -> Instance:
        instance_id = f"i-{uuid.uuid4().hex[:12]}"
        port = free_port()
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = spec.log_dir / f"{instance_id}.log"
        env, share = self.instance_env(spec, instance_id, port)
        unix_path = self.unix_path(spec, instance_id, env)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                spec.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(spec.model_dir),
                # Own session: a Ctrl-C meant for the gateway must not kill instances
                # before the gateway drains them.
                start_new_session=True,
            )
        if share is not None:
            # The instance pins itself too (before it starts threads); this covers
            # servers that are not modelhost's.
            cpu_share.pin(proc.pid, share)
        self._procs[instance_id] = proc
        if spec.memory_limit_bytes is not None:
            # Set from outside right after the start: the interpreter is still starting,
            # nothing of the model is loaded yet (fleet/limits.py).
            self._limits[instance_id] = limit_process(
                proc.pid, spec.memory_limit_bytes, instance_id
            )
        return Instance(
            instance_id=instance_id,
            spec=spec,
            port=port,
            pid=proc.pid,
            log_path=log_path,
            unix_path=unix_path,
        )

    def unix_path(self, spec: LaunchSpec, instance_id: str, env: dict[str, str]) -> str | None:
        """The Unix domain socket a built-in instance listens on besides its port (all its
        workers share it), set in its `env`; None (TCP only) for a user's own server,
        sockets off, or several workers on uvicorn (fleet/sockets.py says why)."""
        if self.sockets is None or not spec.builtin or not sockets.unix_socket_ok(env):
            return None
        path = env[sockets.ENV] = self.sockets.path_for(instance_id)
        return path

    def instance_env(
        self, spec: LaunchSpec, instance_id: str, port: int
    ) -> tuple[dict[str, str], list[int] | None]:
        """The whole environment of an instance process (spawned or forked) and the CPUs
        it is pinned to (None: not pinned)."""
        # Never the gateway's whole environment: it may hold credentials.
        env = inherited_environment(os.environ)
        env.update(spec.env)
        instance_type = spec.env.get(gpus.INSTANCE_TYPE_ENV)
        env.update(self._gpu_env(instance_type))
        share = self.cpus.next(instance_type)
        if share is not None:
            env[cpu_share.ENV] = cpu_share.env_value(share)
        env.update(
            {
                "SAGEMAKER_BIND_TO_PORT": str(port),
                "SM_MODEL_DIR": str(spec.model_dir),
                "MH_INSTANCE_PARENT_PID": str(os.getpid()),
                "MH_INSTANCE_ID": instance_id,
                "MH_INSTANCE_ENDPOINT_NAME": spec.endpoint_name,
                "MH_INSTANCE_VARIANT_NAME": spec.variant_name,
            }
        )
        return env, share

    def zygote_env(self, threads: str) -> dict[str, str]:
        """A zygote's environment: what every instance inherits, one thread per numerical
        library (no thread pool may exist when it forks), unbuffered output."""
        env = inherited_environment(os.environ)
        # OpenMP (xgboost) reads OMP_NUM_THREADS when it loads, so the zygote's value is
        # its children's; OpenBLAS would start a pool at import with more than one.
        env.update(
            {
                "OMP_NUM_THREADS": threads,
                "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
                # xgboost imports pandas, pandas pyarrow, whose jemalloc starts a purging
                # thread at import unless told not to.
                "JE_ARROW_MALLOC_CONF": "background_thread:false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _gpu_env(self, instance_type: str | None) -> dict[str, str]:
        """GPU instance types: this instance's own GPU(s), round-robin over the machine's."""
        if not gpus.gpus_per_instance(instance_type):
            return {}
        try:
            devices = os.listdir("/dev")
        except OSError:
            devices = []
        pinned = gpus.assign(
            instance_type, self._gpu_starts, gpus.machine_gpus(os.environ, devices)
        )
        self._gpu_starts += 1
        if pinned is None:
            log.info(
                "%s has GPUs but this machine has none: the instance runs on the CPU", instance_type
            )
            return {}
        return {gpus.ENV: pinned}

    def watch(self, instance: Instance, on_exit: Callable[[], None]) -> None:
        """Call `on_exit` on the running loop as soon as the instance's process ends
        (not when it is stopped through `stop`)."""
        proc = self._procs.get(instance.instance_id)
        if proc is None or proc.returncode is not None:
            return  # reaped already: its pid may be another process's now
        try:
            pidfd = os.pidfd_open(proc.pid)
        except OSError:
            return  # gone already; the health check replaces it
        try:
            self._exits.watch(instance.instance_id, pidfd, on_exit)
        finally:
            os.close(pidfd)

    def exit_code(self, instance: Instance) -> int | None:
        """None while the process runs, else its exit status."""
        proc = self._procs.get(instance.instance_id)
        return proc.poll() if proc is not None else -1

    async def stop(self, instance: Instance, grace_s: float) -> None:
        proc = self._procs.get(instance.instance_id)
        instance.status = InstanceStatus.STOPPING
        self._exits.forget(instance.instance_id)
        if proc is None:
            instance.status = InstanceStatus.STOPPED
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace_s
            while proc.poll() is None and loop.time() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        # The instance leads its own process group: whatever it started and left behind
        # (a user's server whose supervisor was killed) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._procs.pop(instance.instance_id, None)
        limit = self._limits.pop(instance.instance_id, None)
        if limit is not None:
            limit.release()
        sockets.remove(instance.unix_path)
        instance.status = InstanceStatus.STOPPED

    def kill_all(self) -> None:
        """Last-resort synchronous cleanup (interpreter exit)."""
        self._exits.forget_all()
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._procs.clear()
        if self.sockets is not None:
            self.sockets.clear()


def tail(path: Path, max_bytes: int = 2000) -> str:
    """The end of an instance log, to explain a failed start."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
