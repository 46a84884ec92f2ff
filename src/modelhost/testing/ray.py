"""A local Ray cluster for tests, demos and `modelhost cluster up --nodes N`.

One head and N-1 more raylets on this machine, each its own Ray node: node k listens on
127.0.1.k+1 (head: 127.0.1.1), has `cpus_per_node` CPUs, `memory_per_node_bytes` of Ray's
memory resource and a custom resource `mh_node_k`, so where Ray placed an instance is
visible in its address. Ray's processes are started with `ray start` (the `ray` of this
interpreter) and stopped by pid: never `ray stop`, which would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelhost.fleet.local import free_port

# Ray notices a dead node after health_check_period_ms × failure_threshold (default 3 s × 5).
SYSTEM_CONFIG = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
OBJECT_STORE_BYTES = 100 * 1024 * 1024
MAX_TEMP_DIR_CHARS = 36


def node_address(index: int) -> str:
    """Node `index` (0: the head) listens on 127.0.1.<index+1> (Ray turns 127.0.0.1 into
    the machine's public address, so the cluster keeps off it)."""
    return f"127.0.1.{index + 1}"


@dataclass
class RayCluster:
    """A Ray head and `nodes - 1` workers on this machine; state in `root`."""

    root: Path
    nodes: int = 3
    port: int = 0
    cpus_per_node: float = 1.0
    memory_per_node_bytes: int = 2 * 1024**3

    @property
    def address(self) -> str:
        return f"{node_address(0)}:{self.port}"

    @property
    def temp_dir(self) -> Path:
        """`root/tmp`, or a short path named after `root` when that is too long: Ray's
        socket paths (temp dir + ~70 bytes) must fit in 107 bytes."""
        inside = self.root / "tmp"
        if len(str(inside)) <= MAX_TEMP_DIR_CHARS:
            return inside
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"mh-ray-{digest}"

    def node_states(self) -> list[tuple[str, bool]]:
        """(address, raylet running) of each node."""
        return [(node_address(i), bool(self.pids(i))) for i in range(self.nodes)]

    def start(self, timeout_s: float = 120.0) -> None:
        """Start the head, then the other nodes (those not running yet: idempotent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port()
        if not self.pids(0):
            self.stop()  # workers left from a head that is gone cannot rejoin it
        for index in range(self.nodes):
            if not self.pids(index):
                self._start_node(index, timeout_s)

    def _start_node(self, index: int, timeout_s: float) -> None:
        ip = node_address(index)
        ports = {
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
        }
        argv = [
            str(Path(sys.executable).parent / "ray"), "start",
            f"--node-ip-address={ip}",
            f"--num-cpus={self.cpus_per_node:g}",
            f"--memory={self.memory_per_node_bytes}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--resources={json.dumps({f'mh_node_{index}': 1})}",
            f"--temp-dir={self.temp_dir}",
            "--disable-usage-stats",
            *(f"{flag}={port}" for flag, port in ports.items()),
        ]  # fmt: skip
        if index == 0:
            # Two clusters on one machine (tests in parallel) must not share the head's
            # fixed default dashboard port (8265).
            argv += [
                "--head",
                f"--port={self.port}",
                f"--dashboard-port={free_port()}",
                "--include-dashboard=false",
                f"--system-config={json.dumps(SYSTEM_CONFIG)}",
            ]
        else:
            argv.append(f"--address={self.address}")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start ({ip}) failed: {proc.stderr[-2000:] or proc.stdout}")

    def pids(self, index: int | None = None) -> list[int]:
        """The pids of this cluster's Ray processes (of node `index` only: its raylet)."""
        import psutil

        marker = str(self.temp_dir)
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or ())
            if marker not in cmdline:
                continue
            if index is None or (
                "raylet" in cmdline and f"--node_ip_address={node_address(index)}" in cmdline
            ):
                found.append(int(proc.info["pid"]))
        return found

    def actor_pids(self, actor_class: str = "InstanceActor") -> list[int]:
        """The pids of the cluster's workers that hold an actor of `actor_class` (Ray
        titles such a worker `ray::CLASS`, or `ray::CLASS.method` while it runs one):
        how many instance actors live, without Ray's dashboard."""
        import psutil

        found = []
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                for proc in psutil.Process(pid).children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        title = " ".join(proc.cmdline())
                        if title.startswith(f"ray::{actor_class}"):
                            found.append(proc.pid)
        return sorted(set(found))

    def kill_node(self, index: int) -> None:
        """Kill node `index`'s raylet with SIGKILL, as a lost machine would go."""
        for pid in self.pids(index):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def running(self) -> bool:
        return bool(self.pids())

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop every process of the cluster (SIGTERM, SIGKILL after `grace_s`)."""
        import psutil

        procs = []
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(pid)
                procs += [root, *root.children(recursive=True)]
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=grace_s)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=grace_s)

    def memory_bytes(self) -> int:
        """Resident memory of all of the cluster's processes (Ray's own and workers)."""
        import psutil

        total = 0
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += proc.memory_info().rss
        return total

    def purge(self) -> None:
        self.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def local_ray_cluster(
    nodes: int = 3, cpus_per_node: float = 1.0, memory_per_node_bytes: int = 2 * 1024**3
) -> Iterator[RayCluster]:
    """A throwaway local Ray cluster of `nodes` nodes in a temp dir, stopped on exit.
    The temp dir is short: Ray's socket paths must fit in 107 bytes."""
    root = Path(tempfile.mkdtemp(prefix="mh-ray-", dir="/tmp"))
    cluster = RayCluster(root, nodes, 0, cpus_per_node, memory_per_node_bytes)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.purge()
