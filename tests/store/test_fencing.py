"""Fencing on a real PostgreSQL: two gateways' stores and locks in one process. The first
leader's lock session is cut behind its back (as a network failure would), so it still
believes it leads when the second takes over; its leader-only writes must then fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from modelhost.errors import FencedOut
from modelhost.store.coordination import LeaderLock, RouteBoard, WorkClaims, libpq_url
from modelhost.store.fencing import ClaimFence, LeaderFence
from modelhost.store.metadata import Kind, MetadataStore, Record, leadership
from modelhost.testing.postgres import PostgresCluster

pytestmark = pytest.mark.integration


def _cut(url: str, pid: int) -> None:
    """End a server session as a broken network or a DBA would; its client is not told.
    Waits (up to 30 s) until the session is gone and its locks are free."""
    with psycopg.connect(libpq_url(url), autocommit=True) as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s, 30000)", (pid,)).fetchone()
        assert row is not None and row[0], f"session {pid} did not end"


def _set_status(status: str) -> Any:
    def change(rec: Record) -> None:
        rec.status = status

    return change


@pytest.fixture
def url(postgres: PostgresCluster) -> str:
    url = postgres.fresh_database_url()
    MetadataStore(url).close()  # migrated: the locks take their epoch in `leadership`
    return url


def test_a_deposed_leader_cannot_overwrite_the_new_leaders_writes(url: str) -> None:
    store_a, store_b = MetadataStore(url), MetadataStore(url)
    lock_a, lock_b = LeaderLock(url, holder="gateway-a"), LeaderLock(url, holder="gateway-b")
    fence_a, fence_b = LeaderFence(lock_a), LeaderFence(lock_b)
    try:
        store_a.create(Record(Kind.ENDPOINT, "ep", "arn:ep", {}, status="Creating"))
        assert lock_a.try_acquire() and not lock_b.try_acquire()
        assert store_a.update(Kind.ENDPOINT, "ep", _set_status("InService"), fence_a)

        _cut(url, lock_a._conn.info.backend_pid)
        assert lock_a.held  # it has not noticed yet: the two-leader window
        assert lock_b.try_acquire()
        assert lock_b.epoch == (lock_a.epoch or 0) + 1
        store_b.update(Kind.ENDPOINT, "ep", _set_status("Updating"), fence_b)

        with pytest.raises(FencedOut, match="gateway-b"):
            store_a.update(Kind.ENDPOINT, "ep", _set_status("Failed"), fence_a)
        rec = store_a.get(Kind.ENDPOINT, "ep")
        with pytest.raises(FencedOut):
            store_a.save(Record(Kind.ENDPOINT, "ep", "arn:ep", {}, status="Failed"), fence_a)
        with pytest.raises(FencedOut):
            store_a.delete(Kind.ENDPOINT, "ep", fence_a)
        assert store_b.get(Kind.ENDPOINT, "ep") == rec and rec is not None
        assert rec.status == "Updating"
        # Writes anyone may make (API calls through any gateway) are not fenced.
        store_a.update(Kind.ENDPOINT, "ep", _set_status("InService"))
        with store_b.engine.connect() as conn:
            row = conn.execute(leadership.select()).one()
        assert (row.epoch, row.holder) == (lock_b.epoch, "gateway-b")
    finally:
        for lock in (lock_a, lock_b):
            lock.release()
        store_a.close()
        store_b.close()


def test_a_deposed_leader_publishes_no_route(url: str) -> None:
    store = MetadataStore(url)
    lock_a, lock_b = LeaderLock(url, holder="a"), LeaderLock(url, holder="b")
    board_a, board_b = RouteBoard(store.engine, url, "a"), RouteBoard(store.engine, url, "b")
    board_a.fence, board_b.fence = LeaderFence(lock_a), LeaderFence(lock_b)
    try:
        assert lock_a.try_acquire()
        board_a.publish("ep", {"Name": "ep", "From": "a"})
        _cut(url, lock_a._conn.info.backend_pid)
        assert lock_b.try_acquire()
        board_b.clear()
        board_b.publish("ep", {"Name": "ep", "From": "b"})
        with pytest.raises(FencedOut):
            board_a.publish("ep", {"Name": "ep", "From": "a"})
        with pytest.raises(FencedOut):
            board_a.clear()
        assert board_b.load() == {"ep": {"Name": "ep", "From": "b"}}
    finally:
        lock_a.release()
        lock_b.release()
        store.close()


def test_a_lock_that_is_not_held_fences_every_write(url: str) -> None:
    store = MetadataStore(url)
    store.create(Record(Kind.ENDPOINT, "ep", "arn:ep", {}))
    lock = LeaderLock(url, holder="never-led")
    try:
        with pytest.raises(FencedOut, match="does not lead"):
            store.update(Kind.ENDPOINT, "ep", _set_status("InService"), LeaderFence(lock))
        assert lock.try_acquire()
        lock.release()  # stepped down: its epoch is no proof any more
        with pytest.raises(FencedOut):
            store.update(Kind.ENDPOINT, "ep", _set_status("InService"), LeaderFence(lock))
    finally:
        store.close()


def test_a_lost_job_claim_fences_the_jobs_progress(url: str) -> None:
    store = MetadataStore(url)
    store.create(Record(Kind.TRANSFORM_JOB, "job", "arn:job", {}, status="InProgress"))
    mine, theirs = WorkClaims(url), WorkClaims(url)
    fence = ClaimFence(mine, Kind.TRANSFORM_JOB, "job")
    try:
        assert mine.claim(Kind.TRANSFORM_JOB, "other-job")
        with pytest.raises(FencedOut):  # another job's claim is no proof
            store.update(Kind.TRANSFORM_JOB, "job", _set_status("InProgress"), fence)
        assert mine.claim(Kind.TRANSFORM_JOB, "job")
        store.update(Kind.TRANSFORM_JOB, "job", _set_status("InProgress"), fence)
        assert not theirs.claim(Kind.TRANSFORM_JOB, "job")

        pid = mine.session_pid()
        assert pid is not None
        _cut(url, pid)
        assert theirs.claim(Kind.TRANSFORM_JOB, "job")  # the job is resumed elsewhere
        with pytest.raises(FencedOut, match="claim"):
            store.update(Kind.TRANSFORM_JOB, "job", _set_status("Stopped"), fence)
        assert theirs_fenced_write_passes(store, theirs)
    finally:
        mine.close()
        theirs.close()
        store.close()


def theirs_fenced_write_passes(store: MetadataStore, claims: WorkClaims) -> bool:
    fence = ClaimFence(claims, Kind.TRANSFORM_JOB, "job")
    rec = store.update(Kind.TRANSFORM_JOB, "job", _set_status("Completed"), fence)
    return rec is not None and rec.status == "Completed"


def test_on_sqlite_the_one_gateway_always_passes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = MetadataStore(url)
    store.create(Record(Kind.ENDPOINT, "ep", "arn:ep", {}))
    lock = LeaderLock(url)
    assert lock.try_acquire()
    fences = (LeaderFence(lock), ClaimFence(WorkClaims(url), Kind.TRANSFORM_JOB, "j"))
    for fence in fences:
        rec = store.update(Kind.ENDPOINT, "ep", _set_status("InService"), fence)
        assert rec is not None and rec.status == "InService"
    store.close()
