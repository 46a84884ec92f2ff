"""Resource limits of one instance process (memory; the CPU share is fleet/cpu_share.py).

`LaunchSpec.memory_limit_bytes` — a serverless variant's MemorySizeInMB, else the instance
type's memory (`type_memory_limit`; setting `instance_memory_limits`) — becomes the
process's memory limit through one of two mechanisms:

- **cgroup v2** (`memory.max` of a per-instance cgroup under `/sys/fs/cgroup/modelhost`),
  preferred where `/sys/fs/cgroup` is a writable cgroup2 mount with the memory controller:
  it counts what the process really uses (resident memory and page cache, children
  included) and the kernel's OOM killer ends the instance when it goes over, which the
  gateway reports as a ModelError (the instance's `memory.events` says `oom_kill`).
- **RLIMIT_DATA** otherwise (no cgroup2, a read-only or v1-only hierarchy as in most
  containers, not root). RLIMIT_DATA rather than RLIMIT_AS: it counts private writable
  memory (heap, anonymous mmaps, what numpy allocates) but not the shared libraries
  and reserved address space that xgboost, OpenMP and glibc's per-thread arenas map, so a
  1 GiB limit means roughly 1 GiB of data, as MemorySizeInMB does. A model that asks for
  more gets MemoryError (malloc fails) instead of being killed: it answers the request
  with an error and the instance keeps serving.

The limit is set from outside the process (`prlimit(2)` right after the start) for a
spawned instance, and by the process itself (`apply_in_child`) for one forked by the
zygote, before it loads the model.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

log = logging.getLogger("modelhost.fleet")

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "modelhost"


class MemoryMechanism(StrEnum):
    """How an instance's memory limit is enforced on this machine."""

    CGROUP_V2 = "cgroup-v2"
    RLIMIT_DATA = "rlimit-data"


def cgroup_v2_usable(root: Path = CGROUP_ROOT) -> bool:
    """A cgroup2 mount at `root` with the memory controller, writable by us."""
    try:
        controllers = (root / "cgroup.controllers").read_text().split()
    except OSError:
        return False
    return "memory" in controllers and os.access(root, os.W_OK)


def mechanism(root: Path = CGROUP_ROOT) -> MemoryMechanism:
    return MemoryMechanism.CGROUP_V2 if cgroup_v2_usable(root) else MemoryMechanism.RLIMIT_DATA


@dataclass
class MemoryLimit:
    """The memory limit of one instance process; `release()` when it has stopped."""

    limit_bytes: int
    mechanism: MemoryMechanism
    cgroup: Path | None = None

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this instance for going over (cgroup v2
        only; under RLIMIT_DATA the model gets MemoryError and answers it)."""
        if self.cgroup is None:
            return False
        try:
            events = (self.cgroup / "memory.events").read_text().split()
        except OSError:
            return False
        counts = dict(zip(events[::2], events[1::2], strict=False))
        return int(counts.get("oom_kill", "0")) > 0

    def release(self) -> None:
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()


def limit_process(
    pid: int, limit_bytes: int, instance_id: str, root: Path = CGROUP_ROOT
) -> MemoryLimit:
    """Limit the running process `pid` (and what it starts later) to `limit_bytes`."""
    if cgroup_v2_usable(root):
        group = root / CGROUP_PARENT / instance_id
        try:
            parent = group.parent
            parent.mkdir(exist_ok=True)
            # Children of our cgroup can only use controllers it delegates.
            with contextlib.suppress(OSError):
                (parent / "cgroup.subtree_control").write_text("+memory")
            group.mkdir(exist_ok=True)
            (group / "memory.max").write_text(str(limit_bytes))
            if (group / "memory.swap.max").exists():
                # Swapping would turn "over the limit" into "very slow" instead.
                (group / "memory.swap.max").write_text("0")
            (group / "cgroup.procs").write_text(str(pid))
            return MemoryLimit(limit_bytes, MemoryMechanism.CGROUP_V2, group)
        except OSError as exc:
            log.warning("cgroup v2 memory limit failed (%s); using RLIMIT_DATA", exc)
    resource.prlimit(pid, resource.RLIMIT_DATA, (limit_bytes, limit_bytes))
    return MemoryLimit(limit_bytes, MemoryMechanism.RLIMIT_DATA)


def machine_memory_bytes() -> int:
    """This machine's physical memory."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def type_memory_limit(type_memory_bytes: int | None, machine_bytes: int) -> int | None:
    """The memory limit of an instance whose type has `type_memory_bytes` (None: a type
    the table does not know, no limit). A type with as much memory as this machine or
    more gets none either: the machine bounds it, and a limit above it would mean nothing
    (load tests and recommendations say such types measure as this machine)."""
    if type_memory_bytes is None or type_memory_bytes >= machine_bytes:
        return None
    return type_memory_bytes


def apply_in_child(limit_bytes: int) -> None:
    """The forked instance limits itself, before loading anything (RLIMIT_DATA; the
    zygote's parent adds the cgroup, where there is one, with `limit_process`)."""
    resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, limit_bytes))
