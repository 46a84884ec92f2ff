"""The bounded cache's users: the periodic pass's schedule (a fake clock), fetching with a
lease (`fetch_leased`, `ArtifactStore.use`), and a process holding a lease through the
store, killed with SIGKILL, freeing its entry for the next pass."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.settings import Settings
from modelhost.store.artifacts import ArtifactStore
from modelhost.store.cache_bound import PassSchedule, bound, fetch_leased, scan
from modelhost.testing.clock import FakeClock
from tests.support import kill_all

KB = 1000


def _source(tmp_path: Path, name: str, size: int = 10 * KB) -> str:
    path = tmp_path / "sources" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(name.encode() * (size // len(name)))
    return str(path)


# --- when the periodic pass runs -----------------------------------------------------------


def test_the_pass_is_due_at_once_then_once_per_interval() -> None:
    clock = FakeClock()
    schedule = PassSchedule(60.0, clock)
    assert schedule.due()  # the first tick: a gateway that starts bounds its cache
    assert not schedule.due()
    clock.advance(59.9)
    assert not schedule.due()
    clock.advance(0.1)
    assert schedule.due()
    clock.advance(30)
    assert not schedule.due()  # counted from the last pass, not from the first


def test_an_interval_of_zero_turns_the_pass_off() -> None:
    clock = FakeClock()
    schedule = PassSchedule(0.0, clock)
    for _ in range(3):
        assert not schedule.due()
        clock.advance(3600)


# --- fetching with a lease -----------------------------------------------------------------


def test_use_leases_the_entry_until_it_is_closed(tmp_path: Path) -> None:
    store = ArtifactStore.from_values(tmp_path / "cache", budget_bytes=1)
    with store.use(_source(tmp_path, "model")) as model_dir:
        assert model_dir.is_dir()
        assert [e.in_use for e in scan(store.cache_dir)] == [True]
        # Over budget, yet in use: the pass leaves it.
        assert store.bound() is not None and model_dir.is_dir()
    assert [e.in_use for e in scan(store.cache_dir)] == [False]
    eviction = store.bound()
    assert eviction is not None and eviction.evicted == (model_dir.name,)
    assert not model_dir.exists()


def test_adding_an_entry_evicts_idle_ones_but_not_the_new_one(tmp_path: Path) -> None:
    store = ArtifactStore.from_values(tmp_path / "cache", budget_bytes=15 * KB)
    with store.use(_source(tmp_path, "old")) as old:
        pass
    with store.use(_source(tmp_path, "new")) as new:
        assert not old.exists() and new.is_dir()  # evicted by the fetch that added `new`
    got = store.use(_source(tmp_path, "new"))
    assert got.path == new and not got.fetched  # found: nothing to evict
    got.close()


def test_an_unbounded_store_neither_leases_nor_evicts(tmp_path: Path) -> None:
    store = ArtifactStore.from_values(tmp_path / "cache")
    got = store.use(_source(tmp_path, "free"))
    assert got.lease is None and got.fetched
    got.close()
    assert store.bound() is None and got.path.is_dir()


def test_the_gateways_store_is_bounded_by_its_setting(tmp_path: Path) -> None:
    store = ArtifactStore(Settings(home=tmp_path, artifact_cache_bytes=12345))
    assert store.budget_bytes == 12345
    assert store.cache_dir == tmp_path / "artifacts"


def test_an_entry_evicted_before_its_lease_is_fetched_again(tmp_path: Path) -> None:
    store = ArtifactStore.from_values(tmp_path / "cache")
    url = _source(tmp_path, "racy")
    calls = []

    def fetch() -> tuple[Path, bool]:
        path, worked = store.fetch_counted(url)
        calls.append(worked)
        if len(calls) == 1:
            bound(store.cache_dir, 0)  # another process evicts it right after the fetch
        return path, worked

    got = fetch_leased(store.cache_dir, fetch)
    assert calls == [True, True] and got.fetched and got.lease is not None
    assert got.path.is_dir()
    got.close()


def test_an_entry_evicted_every_time_gives_up_naming_the_advice(tmp_path: Path) -> None:
    store = ArtifactStore.from_values(tmp_path / "cache")
    url = _source(tmp_path, "thrash")

    def fetch() -> tuple[Path, bool]:
        path, worked = store.fetch_counted(url)
        bound(store.cache_dir, 0)
        return path, worked

    with pytest.raises(OSError, match=r"evicted .* 2 times .*: raise it"):
        fetch_leased(store.cache_dir, fetch, attempts=2, advice="raise it")


# --- a process holding a lease through the store -------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from modelhost.store.artifacts import ArtifactStore
store = ArtifactStore.from_values(Path(sys.argv[1]), budget_bytes=1)
held = store.use(sys.argv[2])
print(held.path, flush=True)
time.sleep(300)
"""


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    kill_all(procs)


def test_a_killed_user_frees_its_entry_for_the_next_pass(
    tmp_path: Path, holders: list[subprocess.Popen[bytes]]
) -> None:
    """A gateway (or `modelhost edge package`) holding a lease is killed with -9: nothing
    released it, yet the next pass evicts its entry; a live holder's stays."""
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    entries = []
    for name in ("killed", "alive"):
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(cache), _source(tmp_path, name)],
            stdout=subprocess.PIPE,
            env=env,
        )
        holders.append(proc)
        assert proc.stdout is not None
        entries.append(Path(proc.stdout.readline().decode().strip()))
        proc.stdout.close()
    killed, alive = entries
    assert {e.key for e in scan(cache) if e.in_use} == {killed.name, alive.name}
    assert bound(cache, 0).evicted == ()
    os.kill(holders[0].pid, signal.SIGKILL)
    holders[0].wait(timeout=60)
    assert bound(cache, 0).evicted == (killed.name,)
    assert not killed.exists() and alive.is_dir()
