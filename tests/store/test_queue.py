"""The async queue's leases, heartbeats and expiry, driven by a FakeClock (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelhost.store.metadata import MetadataStore
from modelhost.store.queue import AsyncQueue, QueuedRequest, RequestStatus
from modelhost.testing.clock import FakeClock

LEASE_S = 30.0


@pytest.fixture()
def queue(tmp_path: Path) -> AsyncQueue:
    return AsyncQueue(MetadataStore(f"sqlite:///{tmp_path / 'q.db'}"))


def _request(n: int, clock: FakeClock, ttl_s: float = 600.0, endpoint: str = "ep") -> QueuedRequest:
    now = clock()
    return QueuedRequest(
        request_id=f"r{n}",
        endpoint=endpoint,
        inference_id=f"i{n}",
        output_location=f"/tmp/out/r{n}.out",
        received_s=now,
        expires_s=now + ttl_s,
        invocation_timeout_s=900.0,
        headers={"ContentType": "text/csv"},
        payload=b"1,2,3",
    )


def test_a_request_is_leased_once_until_its_lease_runs_out(queue: AsyncQueue) -> None:
    clock = FakeClock()
    queue.enqueue(_request(1, clock))
    first = queue.lease("ep", "worker-a", clock(), LEASE_S, 10)
    assert [r.request_id for r in first] == ["r1"]
    assert first[0].status is RequestStatus.RUNNING and first[0].attempts == 1
    # Held: nobody else gets it, even just before the lease ends.
    clock.advance(LEASE_S - 1)
    assert queue.lease("ep", "worker-b", clock(), LEASE_S, 10) == []
    # The worker died (no heartbeat): after the lease, another worker takes it.
    clock.advance(2)
    again = queue.lease("ep", "worker-b", clock(), LEASE_S, 10)
    assert [r.lease_owner for r in again] == ["worker-b"] and again[0].attempts == 2
    # The dead worker's late finish is refused; the new owner's is taken.
    assert not queue.finish("r1", "worker-a", clock(), succeeded=True)
    assert queue.finish("r1", "worker-b", clock(), succeeded=True)
    assert queue.get("r1").status is RequestStatus.SUCCEEDED  # type: ignore[union-attr]
    assert queue.get("r1").payload is None  # type: ignore[union-attr]
    assert queue.lease("ep", "worker-c", clock.advance(LEASE_S * 2), LEASE_S, 10) == []


def test_heartbeats_keep_a_lease(queue: AsyncQueue) -> None:
    clock = FakeClock()
    queue.enqueue(_request(1, clock))
    queue.lease("ep", "a", clock(), LEASE_S, 10)
    for _ in range(5):
        clock.advance(LEASE_S / 2)
        assert queue.heartbeat(["r1"], "a", clock(), LEASE_S) == 1
        assert queue.lease("ep", "b", clock(), LEASE_S, 10) == []
    # Another worker's heartbeat for it does nothing.
    assert queue.heartbeat(["r1"], "b", clock(), LEASE_S) == 0


def test_lease_takes_the_oldest_first_and_respects_the_limit(queue: AsyncQueue) -> None:
    clock = FakeClock()
    for n in range(5):
        queue.enqueue(_request(n, clock))
        clock.advance(1)
    queue.enqueue(_request(9, clock, endpoint="other"))
    taken = queue.lease("ep", "a", clock(), LEASE_S, 3)
    assert [r.request_id for r in taken] == ["r0", "r1", "r2"]
    assert queue.lease("ep", "a", clock(), LEASE_S, 0) == []
    assert [r.request_id for r in queue.lease("ep", "b", clock(), LEASE_S, 10)] == ["r3", "r4"]


def test_expired_only_leases_requests_past_their_ttl(queue: AsyncQueue) -> None:
    clock = FakeClock()
    queue.enqueue(_request(1, clock, ttl_s=60))
    queue.enqueue(_request(2, clock, ttl_s=600))
    assert queue.lease("ep", "a", clock(), LEASE_S, 10, expired_only=True) == []
    clock.advance(61)
    expired = queue.lease("ep", "a", clock(), LEASE_S, 10, expired_only=True)
    assert [r.request_id for r in expired] == ["r1"]


def test_the_same_inference_id_is_queued_once(queue: AsyncQueue) -> None:
    clock = FakeClock()
    _row, new = queue.enqueue(_request(1, clock))
    assert new
    again = _request(1, clock)
    again.request_id = "another"
    row2, new2 = queue.enqueue(again)
    assert not new2 and row2.request_id == "r1"
    assert queue.counts("ep") == {"Queued": 1}


def test_release_puts_a_request_back_and_backlog_counts_it(queue: AsyncQueue) -> None:
    clock = FakeClock()
    queue.enqueue(_request(1, clock))
    clock.advance(5)
    queue.enqueue(_request(2, clock))
    queue.lease("ep", "a", clock(), LEASE_S, 1)
    backlog = queue.backlogs()["ep"]
    assert backlog.size == 2 and backlog.oldest_received_s == clock() - 5
    assert queue.release("r1", "a")
    assert queue.get("r1").status is RequestStatus.QUEUED  # type: ignore[union-attr]
    queue.lease("ep", "a", clock(), LEASE_S, 2)
    queue.finish("r1", "a", clock(), succeeded=True)
    queue.finish("r2", "a", clock(), succeeded=False, failure_reason="bad", notify=False)
    assert "ep" not in queue.backlogs()
    assert [r.request_id for r in queue.pending_notifications()] == ["r1"]
    queue.notified("r1")
    assert queue.pending_notifications() == []


def test_the_queue_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    clock = FakeClock()
    store = MetadataStore(url)
    AsyncQueue(store).enqueue(_request(1, clock))
    store.close()
    reopened = AsyncQueue(MetadataStore(url))
    assert reopened.get("r1").payload == b"1,2,3"  # type: ignore[union-attr]


def test_purge_forgets_only_old_finished_and_notified_requests(queue: AsyncQueue) -> None:
    clock = FakeClock()
    for n in range(4):
        queue.enqueue(_request(n, clock))
    queue.lease("ep", "a", clock(), LEASE_S, 3)
    queue.finish("r0", "a", clock(), succeeded=True, notify=False)
    queue.finish("r1", "a", clock(), succeeded=False, failure_reason="x", notify=True)
    clock.advance(100)
    assert queue.purge(clock() - 50) == 1  # r1 still owes a notification, r2 runs, r3 waits
    assert queue.get("r0") is None
    assert {r.request_id for r in queue.pending_notifications()} == {"r1"}
    assert queue.counts("ep") == {"Failed": 1, "Running": 1, "Queued": 1}


def test_release_all_puts_back_what_one_owner_runs(queue: AsyncQueue) -> None:
    clock = FakeClock()
    for n in range(3):
        queue.enqueue(_request(n, clock))
    queue.lease("ep", "a", clock(), LEASE_S, 2)
    queue.lease("ep", "b", clock(), LEASE_S, 1)
    assert queue.release_all("a") == 2
    assert queue.counts("ep") == {"Queued": 2, "Running": 1}
    assert [r.lease_owner for r in queue.lease("ep", "c", clock(), LEASE_S, 5)] == ["c", "c"]


def test_abandon_fails_the_waiting_requests_of_a_gone_endpoint(queue: AsyncQueue) -> None:
    clock = FakeClock()
    for n in range(3):
        queue.enqueue(_request(n, clock))
    queue.enqueue(_request(9, clock, endpoint="other"))
    queue.lease("ep", "a", clock(), LEASE_S, 1)
    assert queue.abandon("ep", "deleted", clock()) == 2
    assert queue.counts("ep") == {"Failed": 2, "Running": 1}
    clock.advance(LEASE_S + 1)  # the running one's worker is gone too
    assert queue.abandon("ep", "deleted", clock()) == 1
    assert queue.counts("other") == {"Queued": 1}
    assert queue.get("r1").failure_reason == "deleted"  # type: ignore[union-attr]
