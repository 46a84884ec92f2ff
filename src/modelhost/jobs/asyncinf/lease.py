"""The queue's decisions as pure functions (times passed in; tested with a FakeClock).

The lease itself is enforced by the store's conditional UPDATEs (store/queue.py); these
say when a request is due, how many may start, and how long to wait between attempts.
"""

from __future__ import annotations

from modelhost.store.queue import Backlog, QueuedRequest, RequestStatus


def is_expired(request: QueuedRequest, now_s: float) -> bool:
    """Past RequestTTLSeconds since it was received (SageMaker then fails it unrun)."""
    return now_s >= request.expires_s


def lease_lost(request: QueuedRequest, now_s: float) -> bool:
    """A running request whose worker stopped renewing its lease: anyone may take it."""
    return (
        request.status is RequestStatus.RUNNING
        and request.lease_expires_s is not None
        and request.lease_expires_s < now_s
    )


def capacity(per_instance: int, instances: int, in_flight: int) -> int:
    """How many more requests may start: MaxConcurrentInvocationsPerInstance × instances,
    minus those already running here (0 instances: none, they wait in the queue)."""
    return max(per_instance * instances - in_flight, 0)


def backoff_s(attempt: int, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Exponential backoff before retry `attempt` (1-based) of a notification."""
    return float(min(base_s * 2 ** max(attempt - 1, 0), cap_s))


def backlog_gauges(backlog: Backlog | None, instances: int, now_s: float) -> dict[str, float]:
    """SageMaker's endpoint-level async metrics for one endpoint (EndpointName dimension)."""
    size = backlog.size if backlog else 0
    oldest = backlog.oldest_received_s if backlog else None
    return {
        "ApproximateBacklogSize": float(size),
        "ApproximateBacklogSizePerInstance": size / instances if instances else float(size),
        "ApproximateAgeOfOldestRequest": max(now_s - oldest, 0.0) if oldest is not None else 0.0,
        "HasBacklogWithoutCapacity": 1.0 if size and not instances else 0.0,
    }
