"""Log events of instances in SQLite (`logs.db` in home), queried the CloudWatch Logs way.

Events are stored per stream in arrival order, and each stream's timestamps never go
backwards (the indexer clamps them), so a stream's event id order is its time order. That
makes GetLogEvents' tokens plain positions (`f/<id>` after, `b/<id>` before) that stay
valid as events arrive and as old ones expire; FilterLogEvents pages by (timestamp, id)
across streams. Retention drops events older than `retention_s` and the oldest events when
the stored messages exceed `max_bytes`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelhost.telemetry.log_filter import FilterPattern

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_groups (name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log_streams (
    id INTEGER PRIMARY KEY,
    group_name TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    first_event_ms INTEGER,
    last_event_ms INTEGER,
    last_ingestion_ms INTEGER,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    path TEXT,
    file_id TEXT,
    file_offset INTEGER NOT NULL DEFAULT 0,
    UNIQUE (group_name, name)
);
CREATE TABLE IF NOT EXISTS log_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    ingest_ms INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_events_by_stream ON log_events (stream_id, id);
CREATE INDEX IF NOT EXISTS log_events_by_time ON log_events (ts_ms, id);
"""
_STREAM_COLUMNS = (
    "id, group_name, name, created_ms, first_event_ms, last_event_ms, last_ingestion_ms, "
    "stored_bytes, path, file_id, file_offset"
)


@dataclass
class Stream:
    """One log stream, and where the indexer is in the file it comes from."""

    id: int
    group: str
    name: str
    created_ms: int
    first_event_ms: int | None
    last_event_ms: int | None
    last_ingestion_ms: int | None
    stored_bytes: int
    path: str | None
    file_id: str | None
    file_offset: int


@dataclass(frozen=True)
class Group:
    name: str
    created_ms: int
    stored_bytes: int


@dataclass(frozen=True)
class Event:
    id: int
    stream: str
    timestamp_ms: int
    ingestion_ms: int
    message: str


@dataclass(frozen=True)
class NewEvent:
    """An event the indexer read: its time (already clamped) and text."""

    timestamp_ms: int
    message: str


def now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


class LogStore:
    """The events, streams and groups; every method is thread-safe (one lock, one
    connection), so the indexer thread and API calls can share it."""

    def __init__(
        self,
        path: Path,
        *,
        retention_s: float,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_s = retention_s
        self.max_bytes = max_bytes
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing (the indexer) ------------------------------------------------------

    def stream(self, group: str, name: str) -> Stream | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_STREAM_COLUMNS} FROM log_streams WHERE group_name=? AND name=?",
                (group, name),
            ).fetchone()
        return Stream(*row) if row else None

    def tracked_streams(self) -> list[Stream]:
        """Streams that come from a file (the indexer's resume points)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_STREAM_COLUMNS} FROM log_streams WHERE path IS NOT NULL"
            ).fetchall()
        return [Stream(*r) for r in rows]

    def ensure_stream(self, group: str, name: str, path: str | None) -> Stream:
        """The stream, created (with its group) if it is new."""
        created = now_ms(self.clock)
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR IGNORE INTO log_groups (name, created_ms) VALUES (?, ?)",
                (group, created),
            )
            self._db.execute(
                "INSERT OR IGNORE INTO log_streams (group_name, name, created_ms, path) "
                "VALUES (?, ?, ?, ?)",
                (group, name, created, path),
            )
            if path is not None:
                # A stream whose file was forgotten and has come back.
                self._db.execute(
                    "UPDATE log_streams SET path=? WHERE group_name=? AND name=? AND path IS NULL",
                    (path, group, name),
                )
            row = self._db.execute(
                f"SELECT {_STREAM_COLUMNS} FROM log_streams WHERE group_name=? AND name=?",
                (group, name),
            ).fetchone()
        return Stream(*row)

    def append(
        self, stream: Stream, events: Sequence[NewEvent], file_id: str, file_offset: int
    ) -> None:
        """Store `events` and the file position after them, in one transaction, so a crash
        never indexes a line twice or skips one."""
        ingest = now_ms(self.clock)
        size = sum(len(e.message.encode()) for e in events)
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO log_events (stream_id, ts_ms, ingest_ms, message) VALUES (?,?,?,?)",
                [(stream.id, e.timestamp_ms, ingest, e.message) for e in events],
            )
            stream.file_id, stream.file_offset = file_id, file_offset
            if not events:
                self._db.execute(
                    "UPDATE log_streams SET file_id=?, file_offset=? WHERE id=?",
                    (file_id, file_offset, stream.id),
                )
                return
            # Relative updates: retention may have changed the row since `stream` was read.
            self._db.execute(
                "UPDATE log_streams SET first_event_ms=COALESCE(first_event_ms, ?), "
                "last_event_ms=?, last_ingestion_ms=?, stored_bytes=stored_bytes + ?, "
                "file_id=?, file_offset=? WHERE id=?",
                (
                    events[0].timestamp_ms,
                    events[-1].timestamp_ms,
                    ingest,
                    size,
                    file_id,
                    file_offset,
                    stream.id,
                ),
            )
            stream.last_event_ms = events[-1].timestamp_ms

    # --- reading (the API) ----------------------------------------------------------

    def groups(self, *, prefix: str = "", contains: str = "", after: str = "") -> list[Group]:
        """Groups by name: with `prefix`, containing `contains` (case-insensitive, as
        logGroupNamePattern), named after `after` (the pagination key)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT g.name, g.created_ms, COALESCE(SUM(s.stored_bytes), 0) FROM log_groups g "
                "LEFT JOIN log_streams s ON s.group_name = g.name WHERE g.name > ? "
                "GROUP BY g.name ORDER BY g.name",
                (after,),
            ).fetchall()
        needle = contains.lower()
        return [Group(*r) for r in rows if r[0].startswith(prefix) and needle in str(r[0]).lower()]

    def has_group(self, group: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM log_groups WHERE name=?", (group,)).fetchone()
                is not None
            )

    def streams(self, group: str) -> list[Stream]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_STREAM_COLUMNS} FROM log_streams WHERE group_name=? ORDER BY name",
                (group,),
            ).fetchall()
        return [Stream(*r) for r in rows]

    def stream_events(
        self,
        stream: Stream,
        *,
        after_id: int | None = None,
        before_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int,
        newest: bool,
    ) -> list[Event]:
        """Events of one stream in id (= time) order with `after_id < id < before_id` and
        `start_ms <= timestamp < end_ms`: the first `limit`, or the last if `newest`."""
        where, args = ["stream_id = ?"], [stream.id]
        for clause, value in (
            ("id > ?", after_id),
            ("id < ?", before_id),
            ("ts_ms >= ?", start_ms),
            ("ts_ms < ?", end_ms),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        order = "DESC" if newest else "ASC"
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, ts_ms, ingest_ms, message FROM log_events WHERE {' AND '.join(where)}"
                f" ORDER BY id {order} LIMIT ?",
                (*args, limit),
            ).fetchall()
        events = [Event(r[0], stream.name, r[1], r[2], r[3]) for r in rows]
        return events[::-1] if newest else events

    def last_event_id(self, stream: Stream) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(id) FROM log_events WHERE stream_id=?", (stream.id,)
            ).fetchone()
        return int(row[0] or 0)

    def filter_events(
        self,
        streams: Iterable[Stream],
        pattern: FilterPattern,
        *,
        after: tuple[int, int] | None,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
    ) -> list[Event]:
        """Matching events of `streams` in (timestamp, id) order, after the `after` key,
        with `start_ms <= timestamp <= end_ms`."""
        names = {s.id: s.name for s in streams}
        if not names:
            return []
        # One JSON parameter however many streams a group has (SQLite caps `?` counts).
        where = ["stream_id IN (SELECT value FROM json_each(?))"]
        args: list[object] = [json.dumps(list(names))]
        if after is not None:
            where.append("(ts_ms > ? OR (ts_ms = ? AND id > ?))")
            args += [after[0], after[0], after[1]]
        if start_ms is not None:
            where.append("ts_ms >= ?")
            args.append(start_ms)
        if end_ms is not None:
            where.append("ts_ms <= ?")
            args.append(end_ms)
        clauses, terms = _pattern_sql(pattern)
        where += clauses
        args += terms
        with self._lock:
            rows = self._db.execute(
                "SELECT id, stream_id, ts_ms, ingest_ms, message FROM log_events WHERE "
                f"{' AND '.join(where)} ORDER BY ts_ms, id LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [Event(r[0], names[r[1]], r[2], r[3], r[4]) for r in rows]

    # --- retention ------------------------------------------------------------------

    def enforce_retention(self) -> int:
        """Drop events past the age limit, then the oldest ones over the size limit, and
        streams left empty whose file is gone (`forget_file`). Returns events dropped."""
        cutoff = now_ms(self.clock) - int(self.retention_s * 1000)
        dropped = self._drop("ts_ms < ?", cutoff)
        with self._lock:
            total = self._db.execute("SELECT COALESCE(SUM(stored_bytes),0) FROM log_streams")
            over = int(total.fetchone()[0]) - self.max_bytes
        if over > 0:
            # Oldest first, down to 90% of the limit so the next sweeps have headroom.
            target = over + self.max_bytes // 10
            with self._lock:
                last = self._db.execute(
                    "SELECT id FROM (SELECT id, SUM(length(CAST(message AS BLOB))) OVER "
                    "(ORDER BY id) AS running FROM log_events) WHERE running >= ? LIMIT 1",
                    (target,),
                ).fetchone()
            if last is not None:
                dropped += self._drop("id <= ?", int(last[0]))
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "DELETE FROM log_streams WHERE path IS NULL AND stored_bytes = 0 AND NOT EXISTS "
                "(SELECT 1 FROM log_events e WHERE e.stream_id = log_streams.id)"
            )
            self._db.execute(
                "DELETE FROM log_groups WHERE NOT EXISTS "
                "(SELECT 1 FROM log_streams s WHERE s.group_name = log_groups.name)"
            )
        return dropped

    def forget_file(self, stream: Stream) -> None:
        """The stream's file is gone: keep its events, stop tracking the file."""
        with self._lock:
            self._db.execute("UPDATE log_streams SET path=NULL WHERE id=?", (stream.id,))

    def _drop(self, condition: str, value: int) -> int:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            per_stream = self._db.execute(
                "SELECT stream_id, SUM(length(CAST(message AS BLOB))), COUNT(*) FROM log_events "
                f"WHERE {condition} GROUP BY stream_id",
                (value,),
            ).fetchall()
            if not per_stream:
                return 0
            self._db.execute(f"DELETE FROM log_events WHERE {condition}", (value,))
            for stream_id, size, _ in per_stream:
                first = self._db.execute(
                    "SELECT ts_ms FROM log_events WHERE stream_id=? ORDER BY id LIMIT 1",
                    (stream_id,),
                ).fetchone()
                self._db.execute(
                    "UPDATE log_streams SET stored_bytes = MAX(0, stored_bytes - ?), "
                    "first_event_ms = ? WHERE id=?",
                    (size, first[0] if first else None, stream_id),
                )
        return sum(int(count) for _, _, count in per_stream)


def _pattern_sql(pattern: FilterPattern) -> tuple[list[str], list[object]]:
    """SQL conditions for a filter pattern; instr() is case-sensitive, as CloudWatch is."""
    clauses: list[str] = []
    args: list[object] = []
    for term in pattern.required:
        clauses.append("instr(message, ?) > 0")
        args.append(term)
    for term in pattern.excluded:
        clauses.append("instr(message, ?) = 0")
        args.append(term)
    if pattern.any_of:
        clauses.append("(" + " OR ".join("instr(message, ?) > 0" for _ in pattern.any_of) + ")")
        args += list(pattern.any_of)
    return clauses, args
