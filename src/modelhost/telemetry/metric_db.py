"""The metric series' SQLite file (`metrics.db` in the state directory).

One table names the series, one holds points of both tiers keyed by (series, resolution,
second); a row's sketch is the `Sketch` byte form. WAL lets queries read while the flush
thread writes; each thread gets its own connection. `synchronous=NORMAL`: a power cut may
lose the last transactions, which the store accepts anyway (see metric_store).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from modelhost.telemetry.metric_store import MetricKey, Point
from modelhost.telemetry.sketch import Sketch

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    sid INTEGER PRIMARY KEY, namespace TEXT, name TEXT, dimensions TEXT, sketched INTEGER
);
CREATE TABLE IF NOT EXISTS points (
    sid INTEGER, resolution INTEGER, second INTEGER, count INTEGER, total REAL,
    minimum REAL, maximum REAL, sketch BLOB
);
CREATE INDEX IF NOT EXISTS points_by_time ON points (resolution, sid, second);
"""


class SqliteBackend:
    """`MetricBackend` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def load_series(self) -> list[tuple[int, MetricKey, bool]]:
        rows = self._conn().execute(
            "SELECT sid, namespace, name, dimensions, sketched FROM series ORDER BY sid"
        )
        return [
            (sid, MetricKey(ns, name, tuple((k, v) for k, v in json.loads(dims))), bool(sk))
            for sid, ns, name, dims, sk in rows
        ]

    def register(self, sid: int, key: MetricKey, sketched: bool) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?, ?)",
            (sid, key.namespace, key.name, json.dumps(key.dimensions), int(sketched)),
        )

    def write(self, resolution_s: int, rows: list[tuple[int, Point]]) -> None:
        conn = self._conn()
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    sid,
                    resolution_s,
                    p.second,
                    p.count,
                    p.total,
                    p.minimum,
                    p.maximum,
                    p.sketch.to_bytes() if p.sketch is not None else None,
                )
                for sid, p in rows
            ],
        )
        conn.execute("COMMIT")

    def read(
        self, sids: list[int], resolution_s: int, start: int, end: int
    ) -> Iterable[tuple[int, Point]]:
        marks = ",".join("?" * len(sids))
        rows = self._conn().execute(
            "SELECT sid, second, count, total, minimum, maximum, sketch FROM points "
            f"WHERE resolution = ? AND sid IN ({marks}) AND second >= ? AND second < ?",
            (resolution_s, *sids, start, end),
        )
        for sid, second, count, total, minimum, maximum, sketch in rows:
            p = Point(second)
            p.count, p.total, p.minimum, p.maximum = count, total, minimum, maximum
            if sketch is not None:
                p.sketch = Sketch.from_bytes(sketch)
            yield sid, p

    def expire(self, resolution_s: int, before: int) -> None:
        self._conn().execute(
            "DELETE FROM points WHERE resolution = ? AND second < ?", (resolution_s, before)
        )

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
