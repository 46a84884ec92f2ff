"""Fast instance starts: fork a warm zygote instead of starting a fresh interpreter.

`ZygoteProvider` is an `InstanceProvider` around `LocalProcessProvider`. Every instance
of a built-in runtime (a real-time or serverless variant's, a transform job's, a
multi-model endpoint's) is started by asking that runtime's zygote
(`container/zygote.py`: Python, uvicorn, numpy and the framework imported already) to
fork a child, which loads only the model: the instance answers /ping in about a tenth of
a second instead of one to three. A user's server (BYOC commands and images) and the
containers of a multi-container model are spawned by the wrapped provider as before, as
is whatever a fork cannot honour (`key`): a GPU instance type (CUDA should start in a
fresh process), an environment variable read when the interpreter or a library starts,
and a script with its own `code/requirements.txt` (its pins must win over what the
zygote imported). So is any start while no zygote is ready.

Zygotes are keyed by runtime and OMP_NUM_THREADS (OpenMP reads it when it loads, so a
child keeps its zygote's). `prewarm(spec)` starts one when an endpoint or a job of that
runtime is created, and `warm(spec)` waits for it (it takes about as long as one spawned
instance to warm up, and forking N after it costs less than N fresh interpreters). A
zygote lives as long as the gateway. The gateway keeps a forked instance's pidfd: it
tells when the process ends (the zygote, not the gateway, is its parent, and the kernel
reaps it) and signals exactly that process, never a reused pid. `watch` turns any
instance's exit into an immediate callback (the fleet replaces it at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelhost.fleet import cpu_share, sockets
from modelhost.fleet.exits import ExitWatch
from modelhost.fleet.instance import Instance, LaunchSpec
from modelhost.fleet.limits import MemoryLimit, limit_process
from modelhost.fleet.local import LocalProcessProvider, free_port
from modelhost.fleet.provider import DiesWithGateway
from modelhost.frameworks.requirements import REQUIREMENTS_FILE, has_requirements
from modelhost.resources import gpus
from modelhost.resources.status import InstanceStatus

log = logging.getLogger("modelhost.fleet")

ZygoteKey = tuple[str, str]  # (runtime, OMP_NUM_THREADS)
FORK_TIMEOUT_S = 5.0


def _read_at_startup(name: str) -> bool:
    """Whether a model's environment variable only takes effect when the interpreter or a
    library starts (a forked child would run with its zygote's): such a model's
    instances are spawned. OMP_NUM_THREADS is part of the zygote's key instead."""
    if name in ("PYTHONUNBUFFERED", "OMP_NUM_THREADS"):
        return False
    return name.startswith(("PYTHON", "LD_", "MALLOC_", "JE_")) or name.endswith("_NUM_THREADS")


class Zygote:
    """One zygote process and the gateway's end of its socket (one JSON line each way)."""

    def __init__(self, key: ZygoteKey, env: dict[str, str], log_path: Path) -> None:
        self.key = key
        ours, theirs = socket.socketpair()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modelhost.container.zygote", str(theirs.fileno()), key[0]],
                env=env,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        theirs.close()
        self.sock = ours
        self._buffer = b""
        self.ready = False
        self.broken = False
        # It came up with threads: another one would too, so none is started again.
        self.refused = False

    def _lines(self, timeout_s: float) -> list[dict[str, object]]:
        """Whatever whole lines arrive within `timeout_s` (0: only what is there now)."""
        readable, _, _ = select.select([self.sock], [], [], timeout_s)
        if readable:
            data = self.sock.recv(65536)
            if not data:
                self.broken = True
            self._buffer += data
        lines, _, self._buffer = self._buffer.rpartition(b"\n")
        return [json.loads(line) for line in lines.split(b"\n") if line]

    def usable(self) -> bool:
        """Ready to fork: warmed up, single-threaded, alive."""
        if self.broken or self.proc.poll() is not None:
            self.broken = True
            return False
        if not self.ready:
            for message in self._lines(0):
                if message.get("ready"):
                    self.ready = message.get("threads") == 1
                    self.broken = self.refused = not self.ready
                    if self.broken:
                        log.warning("zygote %s has threads; not forking from it", self.key)
        return self.ready

    def fork(self, env: dict[str, str], cwd: Path, log_path: Path, limit: int | None) -> int:
        """The pid of a new child serving as an instance; OSError if the zygote fails."""
        request = {"env": env, "cwd": str(cwd), "log": str(log_path), "memory_limit_bytes": limit}
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        # A few milliseconds; bounded, since it runs on the event loop.
        deadline = time.monotonic() + FORK_TIMEOUT_S
        while not self.broken and (left := deadline - time.monotonic()) > 0:
            for message in self._lines(left):
                if "pid" in message:
                    return int(str(message["pid"]))
                raise OSError(str(message.get("error")))
        self.broken = True
        raise OSError(f"zygote {self.key} did not answer")

    def close(self) -> None:
        self.sock.close()  # the zygote exits at EOF
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


@dataclass
class _Forked:
    pid: int
    pidfd: int
    limit: MemoryLimit | None

    def exited(self) -> bool:
        readable, _, _ = select.select([self.pidfd], [], [], 0)
        return bool(readable)


class ZygoteProvider(DiesWithGateway):
    """Forks built-in-runtime instances from warm zygotes; spawns everything else
    through `base` (see the module docstring)."""

    def __init__(self, base: LocalProcessProvider, log_dir: Path) -> None:
        self.base = base
        self.log_dir = log_dir
        self._zygotes: dict[ZygoteKey, Zygote] = {}
        self._forked: dict[str, _Forked] = {}
        self._exits = ExitWatch()

    @staticmethod
    def key(spec: LaunchSpec) -> ZygoteKey | None:
        """Which zygote can start `spec` (None: none; it is spawned)."""
        runtime = spec.env.get("MH_INSTANCE_RUNTIME")
        if not spec.builtin or not spec.forkable or runtime is None:
            return None
        if gpus.gpus_per_instance(spec.env.get(gpus.INSTANCE_TYPE_ENV) or None):
            return None
        if any(_read_at_startup(name) for name in spec.env):
            return None
        # A multi-model instance's models come later (each may bring its own; as in a
        # spawned instance, the framework is imported by then).
        code = spec.model_dir / "code" / REQUIREMENTS_FILE
        if spec.model_data_prefix is None and has_requirements(code):
            return None
        return (runtime, spec.env.get("OMP_NUM_THREADS", "1"))

    def prewarm(self, spec: LaunchSpec) -> None:
        """Start the zygote that will fork `spec`'s instances, if there is none."""
        key = self.key(spec)
        if key is None:
            return
        zygote = self._zygotes.get(key)
        if zygote is not None and (not zygote.broken or zygote.refused):
            return
        if zygote is not None:
            zygote.close()
        log.info("starting the zygote for runtime %s (OMP_NUM_THREADS=%s)", *key)
        self._zygotes[key] = Zygote(
            key, self.base.zygote_env(key[1]), self.log_dir / f"zygote-{key[0]}-{key[1]}.log"
        )

    async def warm(self, spec: LaunchSpec, timeout_s: float) -> bool:
        """Prewarm and wait (up to `timeout_s`) until `spec`'s next start forks; False
        when it will be spawned (no zygote for it, or the zygote failed)."""
        self.prewarm(spec)
        key = self.key(spec)
        zygote = None if key is None else self._zygotes.get(key)
        if zygote is None:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not zygote.usable() and not zygote.broken and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return zygote.usable()

    def ready(self, spec: LaunchSpec) -> bool:
        """Whether `spec`'s next start forks (its zygote is warm)."""
        key = self.key(spec)
        zygote = None if key is None else self._zygotes.get(key)
        return zygote is not None and zygote.usable()

    def zygote_pid(self, spec: LaunchSpec) -> int | None:
        key = self.key(spec)
        zygote = None if key is None else self._zygotes.get(key)
        return None if zygote is None else zygote.proc.pid

    def start(self, spec: LaunchSpec) -> Instance:
        key = self.key(spec)
        zygote = None if key is None else self._zygotes.get(key)
        if key is None or zygote is None or not zygote.usable():
            if key is not None:
                self.prewarm(spec)  # the next start forks
            return self.base.start(spec)
        instance_id = f"i-{uuid.uuid4().hex[:12]}"
        port = free_port()
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = spec.log_dir / f"{instance_id}.log"
        env, share = self.base.instance_env(spec, instance_id, port)
        unix_path = self.base.unix_path(spec, instance_id, env)
        try:
            pid = zygote.fork(env, spec.model_dir, log_path, spec.memory_limit_bytes)
        except OSError as exc:
            log.warning("zygote %s failed (%s); spawning instead", key, exc)
            return self.base.start(spec)
        if share is not None:
            cpu_share.pin(pid, share)  # the instance pins itself too (MH_INSTANCE_CPUS)
        pidfd = os.pidfd_open(pid)
        limit = None
        if spec.memory_limit_bytes is not None:
            limit = limit_process(pid, spec.memory_limit_bytes, instance_id)
        self._forked[instance_id] = _Forked(pid, pidfd, limit)
        return Instance(
            instance_id=instance_id,
            spec=spec,
            port=port,
            pid=pid,
            log_path=log_path,
            unix_path=unix_path,
        )

    def watch(self, instance: Instance, on_exit: Callable[[], None]) -> None:
        """Call `on_exit` on the running loop as soon as the instance's process ends."""
        forked = self._forked.get(instance.instance_id)
        if forked is None:
            self.base.watch(instance, on_exit)
        else:
            self._exits.watch(instance.instance_id, forked.pidfd, on_exit)

    def exit_code(self, instance: Instance) -> int | None:
        forked = self._forked.get(instance.instance_id)
        if forked is None:
            return self.base.exit_code(instance)
        # The zygote's child: the kernel reaps it, so its status is not ours to read.
        return -1 if forked.exited() else None

    async def stop(self, instance: Instance, grace_s: float) -> None:
        forked = self._forked.pop(instance.instance_id, None)
        if forked is None:
            await self.base.stop(instance, grace_s)
            return
        instance.status = InstanceStatus.STOPPING
        self._exits.forget(instance.instance_id)
        if not forked.exited():
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(forked.pidfd, signal.SIGTERM)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace_s
            while not forked.exited() and loop.time() < deadline:
                await asyncio.sleep(0.02)
        # Its process group (it leads one): whatever it left behind goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(forked.pid, signal.SIGKILL)
        os.close(forked.pidfd)
        if forked.limit is not None:
            forked.limit.release()
        sockets.remove(instance.unix_path)
        instance.status = InstanceStatus.STOPPED

    def kill_all(self) -> None:
        self._exits.forget_all()
        for forked in self._forked.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(forked.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.close(forked.pidfd)
        self._forked.clear()
        for zygote in self._zygotes.values():
            zygote.close()
        self._zygotes.clear()
        self.base.kill_all()
