"""The durable queue of asynchronous invocations: one table in the metadata database.

A request row is written before InvokeEndpointAsync answers 202, so nothing accepted is
lost. Workers take rows with a *lease* (owner + expiry) and renew it by heartbeat; a row
whose lease expired (its worker, instance or gateway died) can be leased again. Every
state change is one conditional UPDATE (`... WHERE lease_owner = :me AND status =
'Running'`), so two workers never both finish a request: the loser's UPDATE matches no
row. The same statements work on SQLite and PostgreSQL; the table lives on
`modelhost.store.metadata.metadata`, so Alembic migrations see it.

Times are passed in (`now_s`), never read here: the lease logic is tested with a FakeClock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from modelhost.store.metadata import MetadataStore, async_requests


class RequestStatus(StrEnum):
    """Lifecycle of one async request: Queued → Running → Succeeded | Failed
    (Running → Queued again when its lease expires or it is released)."""

    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass
class QueuedRequest:
    """One async request as stored."""

    request_id: str
    endpoint: str
    inference_id: str
    output_location: str
    received_s: float
    expires_s: float
    invocation_timeout_s: float
    headers: dict[str, str] = field(default_factory=dict)
    input_location: str | None = None
    payload: bytes | None = None
    failure_location: str | None = None
    status: RequestStatus = RequestStatus.QUEUED
    lease_owner: str | None = None
    lease_expires_s: float | None = None
    attempts: int = 0
    finished_s: float | None = None
    failure_reason: str | None = None
    response_type: str | None = None
    notify_pending: bool = False


@dataclass(frozen=True)
class Backlog:
    """Queued plus running requests of one endpoint, and when the oldest arrived."""

    size: int
    oldest_received_s: float | None


def _leasable(now_s: float) -> Any:
    """Queued, or Running under a lease that has run out (its worker is presumed dead)."""
    c = async_requests.c
    return or_(
        c.status == RequestStatus.QUEUED,
        and_(c.status == RequestStatus.RUNNING, c.lease_expires_s < now_s),
    )


class AsyncQueue:
    """The queue's operations; each is one short transaction on the metadata database."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def enqueue(self, request: QueuedRequest) -> tuple[QueuedRequest, bool]:
        """Store `request`; (stored row, True), or (the earlier row, False) when this
        endpoint already has a request with the same InferenceId (the idempotency key)."""
        row = {k: v for k, v in request.__dict__.items()}
        row["status"] = str(request.status)
        try:
            with self.store.transaction() as conn:
                conn.execute(insert(async_requests).values(**row))
        except IntegrityError:
            existing = self.find(request.endpoint, request.inference_id)
            if existing is None:
                raise
            return existing, False
        return request, True

    def find(self, endpoint: str, inference_id: str) -> QueuedRequest | None:
        c = async_requests.c
        return self._one(and_(c.endpoint == endpoint, c.inference_id == inference_id))

    def get(self, request_id: str) -> QueuedRequest | None:
        return self._one(async_requests.c.request_id == request_id)

    def _one(self, where: Any) -> QueuedRequest | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(async_requests).where(where)).first()
        return _request(row._mapping) if row is not None else None

    def lease(
        self,
        endpoint: str,
        owner: str,
        now_s: float,
        lease_s: float,
        limit: int,
        expired_only: bool = False,
    ) -> list[QueuedRequest]:
        """Take up to `limit` leasable requests of `endpoint`, oldest first. With
        `expired_only`, only those past their TTL (expiring needs no instance)."""
        if limit <= 0:
            return []
        c = async_requests.c
        where = and_(c.endpoint == endpoint, _leasable(now_s))
        if expired_only:
            where = and_(where, c.expires_s <= now_s)
        with self.store.engine.connect() as conn:
            ids = conn.execute(
                select(c.request_id).where(where).order_by(c.received_s).limit(limit)
            ).scalars()
            candidates = list(ids)
        if not candidates:
            return []
        mine = and_(
            c.request_id.in_(candidates),
            c.lease_owner == owner,
            c.status == RequestStatus.RUNNING,
        )
        with self.store.transaction() as conn:
            # Conditional: a row another worker took since the SELECT is left alone.
            conn.execute(
                update(async_requests)
                .where(and_(c.request_id.in_(candidates), _leasable(now_s)))
                .values(
                    status=RequestStatus.RUNNING,
                    lease_owner=owner,
                    lease_expires_s=now_s + lease_s,
                    attempts=c.attempts + 1,
                )
            )
            rows = conn.execute(select(async_requests).where(mine).order_by(c.received_s)).all()
        return [_request(r._mapping) for r in rows]

    def heartbeat(
        self, request_ids: Sequence[str], owner: str, now_s: float, lease_s: float
    ) -> int:
        """Extend the leases `owner` still holds; returns how many it holds."""
        if not request_ids:
            return 0
        c = async_requests.c
        with self.store.transaction() as conn:
            result = conn.execute(
                update(async_requests)
                .where(
                    and_(
                        c.request_id.in_(list(request_ids)),
                        c.lease_owner == owner,
                        c.status == RequestStatus.RUNNING,
                    )
                )
                .values(lease_expires_s=now_s + lease_s)
            )
        return int(result.rowcount)

    def release(self, request_id: str, owner: str) -> bool:
        """Put a request back in the queue (no capacity right now); not a failure."""
        return self._transition(
            request_id, owner, status=RequestStatus.QUEUED, lease_owner=None, lease_expires_s=None
        )

    def abandon(self, endpoint: str, reason: str, now_s: float) -> int:
        """Fail the waiting requests of an endpoint that is gone (deleted, or no longer
        asynchronous); running ones follow once their leases run out."""
        c = async_requests.c
        with self.store.transaction() as conn:
            result = conn.execute(
                update(async_requests)
                .where(and_(c.endpoint == endpoint, _leasable(now_s)))
                .values(
                    status=RequestStatus.FAILED,
                    failure_reason=reason,
                    finished_s=now_s,
                    lease_owner=None,
                    lease_expires_s=None,
                )
            )
        return int(result.rowcount)

    def release_all(self, owner: str) -> int:
        """Put back everything `owner` runs (a clean stop: no waiting for leases to expire)."""
        c = async_requests.c
        with self.store.transaction() as conn:
            result = conn.execute(
                update(async_requests)
                .where(and_(c.lease_owner == owner, c.status == RequestStatus.RUNNING))
                .values(status=RequestStatus.QUEUED, lease_owner=None, lease_expires_s=None)
            )
        return int(result.rowcount)

    def finish(
        self,
        request_id: str,
        owner: str,
        now_s: float,
        succeeded: bool,
        failure_reason: str | None = None,
        notify: bool = True,
        response_type: str | None = None,
    ) -> bool:
        """Mark a request done, if `owner` still holds it (False: it lost the lease)."""
        return self._transition(
            request_id,
            owner,
            status=RequestStatus.SUCCEEDED if succeeded else RequestStatus.FAILED,
            finished_s=now_s,
            failure_reason=failure_reason,
            response_type=response_type,
            payload=None,  # an inline body is not needed once the request is done
            lease_owner=None,
            lease_expires_s=None,
            notify_pending=notify,
        )

    def _transition(self, request_id: str, owner: str, **values: Any) -> bool:
        c = async_requests.c
        with self.store.transaction() as conn:
            result = conn.execute(
                update(async_requests)
                .where(
                    and_(
                        c.request_id == request_id,
                        c.lease_owner == owner,
                        c.status == RequestStatus.RUNNING,
                    )
                )
                .values(**values)
            )
        return bool(result.rowcount == 1)

    def pending_notifications(self, limit: int = 100) -> list[QueuedRequest]:
        c = async_requests.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(async_requests)
                .where(c.notify_pending.is_(True))
                .order_by(c.finished_s)
                .limit(limit)
            ).all()
        return [_request(r._mapping) for r in rows]

    def notified(self, request_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                update(async_requests)
                .where(async_requests.c.request_id == request_id)
                .values(notify_pending=False)
            )

    def purge(self, finished_before_s: float) -> int:
        """Forget requests finished (and notified) before `finished_before_s`."""
        c = async_requests.c
        with self.store.transaction() as conn:
            result = conn.execute(
                delete(async_requests).where(
                    and_(
                        c.status.in_([RequestStatus.SUCCEEDED, RequestStatus.FAILED]),
                        c.finished_s < finished_before_s,
                        c.notify_pending.is_(False),
                    )
                )
            )
        return int(result.rowcount)

    def backlogs(self) -> dict[str, Backlog]:
        """Every endpoint with queued or running requests: its backlog."""
        c = async_requests.c
        active = c.status.in_([RequestStatus.QUEUED, RequestStatus.RUNNING])
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(c.endpoint, func.count(), func.min(c.received_s))
                .where(active)
                .group_by(c.endpoint)
            ).all()
        return {r[0]: Backlog(int(r[1]), r[2]) for r in rows}

    def counts(self, endpoint: str) -> dict[str, int]:
        """Requests of `endpoint` by status (for the CLI and tests)."""
        c = async_requests.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(c.status, func.count()).where(c.endpoint == endpoint).group_by(c.status)
            ).all()
        return {str(r[0]): int(r[1]) for r in rows}


def _request(m: Any) -> QueuedRequest:
    return QueuedRequest(
        request_id=m["request_id"],
        endpoint=m["endpoint"],
        inference_id=m["inference_id"],
        output_location=m["output_location"],
        received_s=m["received_s"],
        expires_s=m["expires_s"],
        invocation_timeout_s=m["invocation_timeout_s"],
        headers=dict(m["headers"] or {}),
        input_location=m["input_location"],
        payload=m["payload"],
        failure_location=m["failure_location"],
        status=RequestStatus(m["status"]),
        lease_owner=m["lease_owner"],
        lease_expires_s=m["lease_expires_s"],
        attempts=m["attempts"],
        finished_s=m["finished_s"],
        failure_reason=m["failure_reason"],
        response_type=m["response_type"],
        notify_pending=bool(m["notify_pending"]),
    )
