"""Memory limits of instance processes (fleet/limits.py)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from modelhost.fleet.limits import MemoryMechanism, limit_process, mechanism

MIB = 1024 * 1024


def _fake_cgroup2(root: Path) -> Path:
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    return root


def test_cgroup_v2_is_preferred_where_it_is_writable(tmp_path: Path) -> None:
    root = _fake_cgroup2(tmp_path / "cgroup")
    assert mechanism(root) == MemoryMechanism.CGROUP_V2
    limit = limit_process(4242, 1024 * MIB, "i-abc", root)
    group = root / "modelhost" / "i-abc"
    assert limit.mechanism == MemoryMechanism.CGROUP_V2 and limit.cgroup == group
    assert (group / "memory.max").read_text() == str(1024 * MIB)
    assert (group / "cgroup.procs").read_text() == "4242"
    assert (root / "modelhost" / "cgroup.subtree_control").read_text() == "+memory"
    assert not limit.oom_killed()
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert limit.oom_killed()


def test_without_cgroup_v2_the_process_gets_rlimit_data(tmp_path: Path) -> None:
    assert mechanism(tmp_path / "nothing") == MemoryMechanism.RLIMIT_DATA
    ours = resource.getrlimit(resource.RLIMIT_DATA)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        limit = limit_process(child.pid, 512 * MIB, "i-def", tmp_path / "nothing")
        assert limit.mechanism == MemoryMechanism.RLIMIT_DATA and limit.cgroup is None
        lines = Path(f"/proc/{child.pid}/limits").read_text().splitlines()
        data = next(line for line in lines if line.startswith("Max data size"))
        assert data.split()[3:5] == [str(512 * MIB), str(512 * MIB)]
        assert not limit.oom_killed()
    finally:
        child.kill()
        child.wait()
    assert resource.getrlimit(resource.RLIMIT_DATA) == ours  # the child's limit, not ours
