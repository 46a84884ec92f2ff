"""An instance's share of this machine's CPUs: its instance type's vCPUs, as cores.

A local instance of `ml.c5.xlarge` (4 vCPUs) is pinned to 4 of this machine's cores (all
of them when there are fewer), so instance types mean CPU locally as they do on AWS. The
cores are handed out in rotation — each instance starts where the previous one's share
ended — so instances of small types spread over the machine instead of piling onto core
0. Types the table does not know (and user containers without a built-in runtime's
instance type) are not pinned.

The share reaches the instance as `MH_INSTANCE_CPUS` (e.g. `0,1`): the instance applies
it to itself first thing (`container/server.py`, before any thread or worker exists,
so all of them inherit it) and its default worker count follows it; the provider also
sets it on the child right after the launch, for servers that are not modelhost's.
Pure choice (`cpu_share`) plus the one syscall (`pin`), tested without processes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

from modelhost.resources.instance_types import instance_vcpus

ENV = "MH_INSTANCE_CPUS"


def machine_cpus() -> list[int]:
    """The cores this process may run on (what the instances' shares come from)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cpu_share(vcpus: int | None, machine: Sequence[int], ordinal: int) -> list[int] | None:
    """The cores of the `ordinal`-th pinned instance with `vcpus` vCPUs on a machine
    with cores `machine`: `min(vcpus, len(machine))` cores, starting where the previous
    instance's share ended. None: nothing to pin (unknown type, or no cores known)."""
    if not vcpus or vcpus < 1 or not machine:
        return None
    count = min(vcpus, len(machine))
    start = (ordinal * count) % len(machine)
    return sorted(machine[(start + i) % len(machine)] for i in range(count))


class CpuShares:
    """Hands out the rotating shares of one provider's instances."""

    def __init__(self, machine: Sequence[int] | None = None) -> None:
        self.machine = list(machine) if machine is not None else machine_cpus()
        self._pinned = 0

    def next(self, instance_type: str | None) -> list[int] | None:
        """The share of the next instance of `instance_type` (None: not pinned)."""
        share = cpu_share(instance_vcpus(instance_type), self.machine, self._pinned)
        if share is not None:
            self._pinned += 1
        return share


def env_value(share: Sequence[int]) -> str:
    return ",".join(str(c) for c in share)


def pin(pid: int, share: Sequence[int]) -> None:
    """Set `pid`'s affinity to `share` (a process that already exited is left alone)."""
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            os.sched_setaffinity(pid, share)
