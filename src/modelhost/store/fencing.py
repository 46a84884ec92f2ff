"""Fences: what only the leader (or the gateway running a job) may write is checked, in
the write's own transaction, against proof that this gateway still holds the lead (the
job's claim). A gateway whose lock connection broke keeps acting as the leader until its
next check notices (`leader_poll_interval_s`); meanwhile another gateway may lead
already, and these checks keep the deposed one from overwriting its writes.

- `LeaderFence`: the `leadership` row's epoch goes up by one each time a gateway takes
  the leader lock (`LeaderLock`, on the lock's own session). A fenced write reads the row
  `FOR SHARE` and passes only while the epoch is the one this gateway took. The share
  lock makes a new leader's bump wait for the writes in flight, so each of the old
  leader's writes either commits before the new leader starts (which then reads it from
  the store) or is refused with `FencedOut`.
- `ClaimFence`: a job's claim is a session advisory lock (`WorkClaims`); a fenced write
  passes only while the claim's session still holds it (`pg_locks`). When that session
  dies the lock is free for another gateway and this one's writes are refused.

On SQLite there is one gateway, which always leads and claims every job: both pass.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from modelhost.errors import FencedOut
from modelhost.store.coordination import LeaderLock, WorkClaims, is_postgres
from modelhost.store.metadata import leadership


class LeaderFence:
    """Passes while `lock` is held with the epoch the `leadership` row still has."""

    def __init__(self, lock: LeaderLock) -> None:
        self.lock = lock

    def check(self, conn: Connection) -> None:
        if not is_postgres(self.lock.url):
            return
        epoch = self.lock.epoch if self.lock.held else None
        if epoch is None:
            raise FencedOut("this gateway does not lead: a leader-only write was refused")
        row = conn.execute(
            select(leadership.c.epoch, leadership.c.holder)
            .where(leadership.c.key == self.lock.key)
            .with_for_update(read=True)
        ).first()
        if row is None or row.epoch != epoch:
            holder = "nobody" if row is None else f"{row.holder} (epoch {row.epoch})"
            raise FencedOut(
                f"this gateway's leadership (epoch {epoch}) is over: {holder} leads; "
                "a leader-only write was refused"
            )


# pg_locks shows a bigint advisory key as two oids and objsubid 1.
_CLAIM_HELD = text(
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = :pid "
    "AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1 AND granted"
)


class ClaimFence:
    """Passes while this gateway's claim on (`kind`, `name`) is held."""

    def __init__(self, claims: WorkClaims, kind: str, name: str) -> None:
        self.claims = claims
        self.kind = kind
        self.name = name

    def check(self, conn: Connection) -> None:
        if not is_postgres(self.claims.url):
            return
        pid = self.claims.session_pid()
        key = WorkClaims.key(self.kind, self.name) & 0xFFFFFFFFFFFFFFFF
        held = (
            pid is not None
            and conn.execute(
                _CLAIM_HELD, {"pid": pid, "high": key >> 32, "low": key & 0xFFFFFFFF}
            ).first()
        )
        if not held:
            raise FencedOut(
                f"this gateway no longer holds the claim on {self.kind} {self.name}: "
                "another gateway may run it; the write was refused"
            )
