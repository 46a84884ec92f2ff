"""Leader election and shared routing snapshots on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from modelhost.store.coordination import LeaderLock, RouteBoard, WorkClaims
from modelhost.store.metadata import MetadataStore
from modelhost.testing.postgres import PostgresCluster

pytestmark = pytest.mark.integration

HOLD = """
import sys, time
from modelhost.store.coordination import LeaderLock
lock = LeaderLock(sys.argv[1])
assert lock.try_acquire()
print("leading", flush=True)
time.sleep(600)
"""


def _wait(condition: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_one_leader_and_its_death_frees_the_lead(postgres: PostgresCluster) -> None:
    url = postgres.fresh_database_url()
    MetadataStore(url).close()  # the schema: the lock takes an epoch in `leadership`
    leader = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert leader.stdout is not None and leader.stdout.readline().strip() == "leading"
        other = LeaderLock(url)
        assert other.try_acquire() is False
        leader.kill()  # SIGKILL: no goodbye, only the closed connection
        leader.wait(30)
        _wait(other.try_acquire)
        third = LeaderLock(url)
        assert third.try_acquire() is False  # now the other one leads
        assert other.try_acquire() is True  # and keeps it
        other.release()
        _wait(third.try_acquire)
        third.release()
    finally:
        leader.kill()
        leader.wait(30)
        if leader.stdout is not None:
            leader.stdout.close()


def test_sqlite_always_leads(tmp_path: Any) -> None:
    assert LeaderLock(f"sqlite:///{tmp_path / 'm.db'}").try_acquire() is True


def test_a_published_route_reaches_a_watcher(postgres: PostgresCluster) -> None:
    url = postgres.fresh_database_url()
    store = MetadataStore(url)
    board = RouteBoard(store.engine, url, "leader")
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    # A long poll interval: only the NOTIFY can make the watcher reread in time.
    watcher = threading.Thread(target=board.watch, args=(seen.append, stop, 300.0))
    watcher.start()
    try:
        _wait(lambda: len(seen) >= 1)
        assert seen[-1] == {}
        board.publish("ep", {"Name": "ep", "Variants": []})
        _wait(lambda: seen[-1] == {"ep": {"Name": "ep", "Variants": []}})
        board.publish("ep", None)
        _wait(lambda: seen[-1] == {})
    finally:
        stop.set()
        board.publish("wake", None)  # the watcher leaves at its next wake-up
        watcher.join(30)
        store.close()
    assert not watcher.is_alive()


def test_work_is_claimed_once_and_freed_by_release_or_close(postgres: PostgresCluster) -> None:
    url = postgres.fresh_database_url()
    mine, theirs = WorkClaims(url), WorkClaims(url)  # two gateways
    try:
        assert mine.claim("transform-job", "j1") is True
        assert mine.claim("transform-job", "j1") is True  # still mine
        assert theirs.claim("transform-job", "j1") is False
        assert theirs.claim("transform-job", "j2") is True  # other work is free
        mine.release("transform-job", "j1")  # released at every level it was taken
        assert theirs.claim("transform-job", "j1") is True
        theirs.close()  # as a gateway's death: its connection goes, its claims with it
        _wait(lambda: mine.claim("transform-job", "j2"))
    finally:
        mine.close()
        theirs.close()
    assert WorkClaims(f"sqlite:///{postgres.root / 'x.db'}").claim("transform-job", "j") is True
