"""Several gateways on one PostgreSQL: who leads, and the routing snapshots they share.

`LeaderLock` is a session advisory lock on a connection of its own: the gateway holding
it runs the controller; when that gateway dies its connection closes and the lock is free
at once for the next `try_acquire`. `RouteBoard` is the `routing_tables` table: the leader
writes each endpoint's route (routing/wire.py's document) and NOTIFYs; the others LISTEN
(and poll as a fallback) and reload. On SQLite there is one gateway: it always leads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Engine, make_url

from modelhost.store.metadata import Fence, routing_tables

log = logging.getLogger("modelhost.coordination")

LEADER_LOCK_KEY = 0x6D686C64  # "mhld": any constant unique to modelhost
CHANNEL = "modelhost_routes"
TAKE_EPOCH = (
    "INSERT INTO leadership (key, epoch, holder, taken_s) VALUES (%s, 1, %s, %s) "
    "ON CONFLICT (key) DO UPDATE SET epoch = leadership.epoch + 1, "
    "holder = excluded.holder, taken_s = excluded.taken_s RETURNING epoch"
)


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as psycopg's conninfo (`postgresql+psycopg://` → `postgresql://`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class LeaderLock:
    """Leadership among the gateways sharing the metadata database at `url`."""

    def __init__(self, url: str, key: int = LEADER_LOCK_KEY, holder: str = "") -> None:
        self.url = url
        self.key = key
        self.holder = holder[:63]  # the session's application_name: who holds the lock
        self._conn: Any = None
        self.held = False
        # The leadership epoch taken with the lock (store/fencing.py); None until then.
        self.epoch: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True while this process holds it."""
        if not is_postgres(self.url):
            self.held = True
            return True
        import psycopg

        conn = self._conn
        try:
            if conn is None or conn.closed:
                conn = self._conn = psycopg.connect(
                    libpq_url(self.url), autocommit=True, connect_timeout=5,
                    application_name=self.holder or "modelhost-leader",
                )  # fmt: skip
                self.held = False
            if self.held:
                conn.execute("SELECT 1")  # still connected, so still held
                return True
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            held = bool(row and row[0])
            if held:
                # On the lock's own session: if it dies before this, no epoch is taken.
                self.epoch = self._take_epoch(conn)
            if conn is self._conn:  # not abandoned meanwhile
                self.held = held
                return held
        except psycopg.Error:
            log.warning("leader lock: lost the connection to the database", exc_info=True)
            if conn is self._conn:
                self.release()
        return False

    def _take_epoch(self, conn: Any) -> int:
        """One more than the last leader's epoch; the bump waits for the writes the last
        leader has in flight (they hold the row `FOR SHARE`), and refuses later ones."""
        row = conn.execute(TAKE_EPOCH, (self.key, self.holder, time.time())).fetchone()
        log.info("leader lock held: leadership epoch %d", row[0])
        return int(row[0])

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()  # ends the session, which frees the lock
        self._conn = None
        self.held = False

    def abandon(self) -> None:
        """Drop the connection without waiting on it: a check that hangs on it (a half-open
        connection) may hold it for minutes. It is closed in the background; the next
        `try_acquire` connects afresh."""
        conn, self._conn, self.held = self._conn, None, False
        if conn is not None:
            threading.Thread(target=_close_quietly, args=(conn,), daemon=True).start()


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


class RouteBoard:
    """The leader's routing snapshots in the `routing_tables` table, with change signals.
    `fence` (the leader's) guards the writes: a deposed leader publishes nothing."""

    def __init__(self, engine: Engine, url: str, publisher: str) -> None:
        self.engine = engine
        self.url = url
        self.publisher = publisher
        self.fence: Fence | None = None

    def publish(self, endpoint: str, route: dict[str, Any] | None) -> None:
        """Write (or with None remove) one endpoint's route and signal the readers."""
        with self.engine.begin() as conn:
            if self.fence is not None:
                self.fence.check(conn)
            conn.execute(delete(routing_tables).where(routing_tables.c.endpoint == endpoint))
            if route is not None:
                conn.execute(
                    insert(routing_tables).values(
                        endpoint=endpoint, route=route, publisher=self.publisher,
                        modified_s=time.time(),
                    )
                )  # fmt: skip
            if is_postgres(self.url):
                # Delivered at commit, so a reader that reloads sees this write.
                conn.execute(text("SELECT pg_notify(:c, :e)"), {"c": CHANNEL, "e": endpoint})

    def clear(self) -> None:
        """A new leader drops what the previous one published (its instances are gone)."""
        with self.engine.begin() as conn:
            if self.fence is not None:
                self.fence.check(conn)
            conn.execute(delete(routing_tables))

    def foreign(self) -> set[str]:
        """Endpoints whose row another publisher wrote (a deposed leader's last write may
        land after the new leader's `clear`): the new leader writes them again."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(routing_tables.c.endpoint).where(
                    routing_tables.c.publisher != self.publisher
                )
            )
            return {r.endpoint for r in rows}

    def load(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(routing_tables.c.endpoint, routing_tables.c.route))
            return {r.endpoint: r.route for r in rows}

    def watch(
        self, on_change: Callable[[dict[str, dict[str, Any]]], None], stop: threading.Event,
        poll_interval_s: float,
    ) -> None:  # fmt: skip
        """Until `stop`: call `on_change(load())` at once, on every NOTIFY, and at least
        every `poll_interval_s` (the fallback when a notification is missed)."""
        while not stop.is_set():
            try:
                if is_postgres(self.url):
                    self._listen(on_change, stop, poll_interval_s)
                else:
                    on_change(self.load())
                    stop.wait(poll_interval_s)
            except Exception:
                log.warning("route board: reading failed; retrying", exc_info=True)
                stop.wait(poll_interval_s)

    def _listen(
        self, on_change: Callable[[dict[str, dict[str, Any]]], None], stop: threading.Event,
        poll_interval_s: float,
    ) -> None:  # fmt: skip
        import psycopg

        with psycopg.connect(libpq_url(self.url), autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            while not stop.is_set():
                on_change(self.load())
                # Wakes on the first notification or after the poll interval; the ones
                # that arrived meanwhile are all covered by the next load.
                for _ in conn.notifies(timeout=poll_interval_s, stop_after=1):
                    pass


class WorkClaims:
    """Which gateway runs a piece of work (a transform job): a session advisory lock per
    name on one connection of this gateway, so its death frees all its claims at once and
    another gateway may resume the work. On SQLite the one gateway claims everything."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def key(kind: str, name: str) -> int:
        digest = hashlib.sha256(f"{kind}/{name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def claim(self, kind: str, name: str) -> bool:
        """True if this gateway now holds the claim (or already did)."""
        if not is_postgres(self.url):
            return True
        import psycopg

        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(libpq_url(self.url), autocommit=True)
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (self.key(kind, name),)
            ).fetchone()
            return bool(row and row[0])

    def session_pid(self) -> int | None:
        """The server process of the claims' session (None without one): the claims are
        its locks (store/fencing.py's `ClaimFence` looks them up)."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                return None
            return int(self._conn.info.backend_pid)

    def release(self, kind: str, name: str) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                # Locks stack per session: release every level this session took.
                while self._conn.execute(
                    "SELECT pg_advisory_unlock(%s)", (self.key(kind, name),)
                ).fetchone()[0]:
                    pass

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None
