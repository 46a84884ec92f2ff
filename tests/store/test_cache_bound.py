"""The bounded artifact cache: the eviction decision as a function, then real files, real
leases and real processes holding them (one killed with SIGKILL)."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.store.artifacts import ArtifactStore
from modelhost.store.cache_bound import (
    CacheEntry,
    Lease,
    bound,
    choose_evictions,
    is_entry,
    lease,
    scan,
)
from tests.support import kill_all

KB = 1000


def _entry(key: str, size: int, used: float, in_use: bool = False) -> CacheEntry:
    return CacheEntry(key, size, used, in_use)


# --- the decision -------------------------------------------------------------------------


def test_nothing_is_evicted_within_the_budget() -> None:
    entries = [_entry("a", 10, 1.0), _entry("b", 20, 2.0)]
    assert choose_evictions(entries, 30) == []
    assert choose_evictions([], 0) == []


def test_least_recently_used_go_first_until_it_fits() -> None:
    entries = [_entry("new", 10, 3.0), _entry("old", 10, 1.0), _entry("mid", 10, 2.0)]
    assert choose_evictions(entries, 25) == ["old"]
    assert choose_evictions(entries, 10) == ["old", "mid"]
    assert choose_evictions(entries, 0) == ["old", "mid", "new"]


def test_entries_in_use_are_never_chosen_even_over_budget() -> None:
    entries = [_entry("busy", 50, 0.0, in_use=True), _entry("idle", 10, 5.0)]
    # The busy one is the oldest and alone exceeds the budget: the idle one goes, it stays.
    assert choose_evictions(entries, 20) == ["idle"]
    assert choose_evictions([_entry("busy", 50, 0.0, in_use=True)], 0) == []


def test_older_entries_go_first_even_when_a_recent_big_one_goes_too() -> None:
    entries = [_entry("a", 5, 1.0), _entry("b", 5, 2.0), _entry("big", 100, 3.0)]
    assert choose_evictions(entries, 100) == ["a", "b"]
    assert choose_evictions(entries, 99) == ["a", "b", "big"]
    # Ties in last use: a stable order by key, so every evictor agrees.
    assert choose_evictions([_entry("y", 5, 1.0), _entry("x", 5, 1.0)], 5) == ["x"]


# --- real files ---------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _add(cache: Path, tmp_path: Path, name: str, size: int) -> Path:
    """A cache entry of `size` bytes, built by the artifact store as a node builds one."""
    source = tmp_path / "sources" / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(name.encode() * (size // len(name)))
    entry = ArtifactStore.from_values(cache).fetch(str(source))
    assert is_entry(cache, entry)
    return entry


def _leased(cache: Path, entry: Path) -> Lease:
    held = lease(cache, entry)
    assert held is not None
    return held


def _use(cache: Path, entry: Path, when_s: float) -> None:
    # Pin an entry's last use (a lease's touch) so the LRU order does not hang on mtimes.
    _leased(cache, entry).close()
    os.utime(cache / ".leases" / entry.name, (when_s, when_s))


def test_bound_evicts_idle_entries_oldest_first(tmp_path: Path, cache: Path) -> None:
    old, mid, new = (_add(cache, tmp_path, n, 10 * KB) for n in ("old", "mid", "new"))
    for when, entry in enumerate((old, mid, new)):
        _use(cache, entry, 1_000_000 + when)
    assert {e.key for e in scan(cache)} == {old.name, mid.name, new.name}
    result = bound(cache, 15 * KB)
    assert result.evicted == (old.name, mid.name)
    assert result.freed_bytes == sum(len(n) * (10 * KB // len(n)) for n in ("old", "mid"))
    assert not old.exists() and not mid.exists() and new.is_dir()
    assert result.total_bytes <= 15 * KB
    # A reader looking the evicted entry up finds nothing and builds it again.
    again = _add(cache, tmp_path, "old", 10 * KB)
    assert again == old and again.is_dir()


def test_a_leased_entry_is_never_evicted(tmp_path: Path, cache: Path) -> None:
    busy = _add(cache, tmp_path, "busy", 10 * KB)
    idle = _add(cache, tmp_path, "idle", 10 * KB)
    _use(cache, idle, 2_000_000_000)  # the idle one is the more recent
    held = _leased(cache, busy)
    try:
        os.utime(cache / ".leases" / busy.name, (1, 1))
        result = bound(cache, 0)
        assert result.evicted == (idle.name,)
        assert busy.is_dir() and result.total_bytes > result.budget_bytes
        assert "in use and never evicted" in result.line(cache)
    finally:
        held.close()
    assert bound(cache, 0).evicted == (busy.name,)
    assert scan(cache) == []


def test_a_lease_on_an_evicted_entry_says_fetch_again(tmp_path: Path, cache: Path) -> None:
    entry = _add(cache, tmp_path, "gone", 10 * KB)
    assert bound(cache, 0).evicted == (entry.name,)
    assert lease(cache, entry) is None


def test_bound_logs_its_evictions(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entry = _add(cache, tmp_path, "logged", 10 * KB)
    with caplog.at_level(logging.INFO, logger="modelhost.artifacts"):
        bound(cache, 0)
    assert any(
        r.levelno == logging.INFO and "evicted 1 entries" in r.getMessage() for r in caplog.records
    )
    assert not entry.exists()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="modelhost.artifacts"):
        assert bound(cache, 0).evicted == ()
    assert caplog.records == []  # nothing to say: empty and within budget


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    kill_all(procs)


def _hold_in_child(cache: Path, entry: Path, procs: list[subprocess.Popen[bytes]]) -> int:
    """A process holding the lease as an instance does: the descriptor is handed over and
    the parent's copy closed."""
    held = _leased(cache, entry)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(300)"], pass_fds=(held.fd,)
        )
    finally:
        held.close()
    procs.append(proc)
    return proc.pid


def test_processes_hold_leases_and_a_killed_one_frees_its_entry(
    tmp_path: Path, cache: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    first = _add(cache, tmp_path, "first", 10 * KB)
    second = _add(cache, tmp_path, "second", 10 * KB)
    pid = _hold_in_child(cache, first, holders)
    _hold_in_child(cache, second, holders)
    assert {e.key for e in scan(cache) if e.in_use} == {first.name, second.name}
    assert bound(cache, 0).evicted == ()
    os.kill(pid, signal.SIGKILL)
    holders[0].wait(timeout=60)
    # The kernel dropped the dead process's lock: its entry is evictable, the other is not.
    assert bound(cache, 0).evicted == (first.name,)
    assert not first.exists() and second.is_dir()


def test_a_lease_waits_for_an_eviction_in_progress_then_says_fetch_again(
    tmp_path: Path, cache: Path
) -> None:
    """The evictor holds the lease file exclusively while it removes the entry; a lease
    taken meanwhile blocks, then finds the marker gone."""
    entry = _add(cache, tmp_path, "racing", 10 * KB)
    script = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(0.5)\n"
        "os.unlink(sys.argv[2])\n"
    )
    (cache / ".leases").mkdir(exist_ok=True)
    evictor = subprocess.Popen(
        [sys.executable, "-c", script, str(cache / ".leases" / entry.name), f"{entry}.complete"],
        stdout=subprocess.PIPE,
    )
    try:
        assert evictor.stdout is not None and evictor.stdout.readline() == b"locked\n"
        assert lease(cache, entry) is None
    finally:
        evictor.wait(timeout=60)
        assert evictor.stdout is not None
        evictor.stdout.close()


def test_what_crashed_builders_left_is_swept(tmp_path: Path, cache: Path) -> None:
    entry = _add(cache, tmp_path, "kept", 10 * KB)
    key = "a" * 64
    scratch = cache / f".tmp-{key}-x1y2"  # a builder killed while unpacking
    half = cache / ("b" * 64)  # an entry renamed into place, its marker never written
    for folder in (scratch, half):
        folder.mkdir()
        (folder / "part").write_bytes(b"x" * KB)
    old_download, live_download = cache / ".download-old", cache / ".download-live"
    old_download.write_bytes(b"x")
    live_download.write_bytes(b"x")
    os.utime(old_download, (1, 1))
    busy = cache / f".tmp-{'c' * 64}-z"  # a build in progress: its key's lock is held
    busy.mkdir()
    (cache / ".locks").mkdir(exist_ok=True)
    # The store's build lock, held as a builder holds it.
    with open(cache / ".locks" / f"{'c' * 64}.lock", "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        bound(cache, 10**9)
    assert not scratch.exists() and not half.exists() and not old_download.exists()
    assert live_download.exists() and busy.exists() and entry.is_dir()
