"""Several gateways on one PostgreSQL: the metric series' minute rollups, shared.

Each gateway keeps its own series (1-second points and minute rollups in its metrics.db,
the request path untouched). `PublishingBackend` wraps that backend: every completed
rollup the store flushes is also inserted into the `metric_rollups` table, one row per
series and minute, tagged with this gateway's id (and each series once into
`metric_series`). `SharedRollups` reads the other gateways' rows back, at query time, for
the series a query asks for (and lists their series for ListMetrics), so GetMetricData,
GetMetricStatistics, the alarms and the autoscaler see the whole fleet's traffic.

The others' data has the rollup period's resolution and arrives when their minute
completes (a minute plus one flush later at most): a 1-second query sees the others'
minutes in the first second of each minute. The write rate is one row per series with
data per minute per gateway (an endpoint variant under traffic: its seven invocation
series, plus three utilization series per instance: ~10 rows/min per variant).

The gateway id is kept in the home (`gateway.id`), so a restarted gateway does not count
its own earlier rollups (which its metrics.db holds too) as another's.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Engine

from modelhost.store.metadata import metric_rollups, metric_series
from modelhost.telemetry.metric_store import MetricBackend, MetricKey, Point
from modelhost.telemetry.sketch import Sketch

log = logging.getLogger("modelhost.telemetry")

EXPIRE_EVERY_S = 3600.0


def gateway_identity(home: Path) -> str:
    """This home's gateway id (made once, kept in `gateway.id`)."""
    path = home / "gateway.id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        ident = uuid.uuid4().hex[:16]
        path.write_text(ident)
        return ident


def _dims(key: MetricKey) -> str:
    return json.dumps(key.dimensions)


def _key(namespace: str, name: str, dims: str) -> MetricKey:
    return MetricKey(namespace, name, tuple((k, v) for k, v in json.loads(dims)))


class SharedRollups:
    """The `metric_rollups` table: this gateway's rollups in, the others' out."""

    def __init__(
        self, engine: Engine, gateway: str, retention_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.gateway = gateway
        self.retention_s = retention_s
        self.clock = clock
        self._expired_at = 0.0
        self._listed: set[MetricKey] | None = None  # this gateway's rows in metric_series

    def publish(self, rows: list[tuple[MetricKey, bool, Point]]) -> None:
        values = [
            {
                "gateway": self.gateway,
                "namespace": key.namespace,
                "name": key.name,
                "dimensions": _dims(key),
                "sketched": sketched,
                "second": p.second,
                "count": p.count,
                "total": p.total,
                "minimum": p.minimum,
                "maximum": p.maximum,
                "sketch": p.sketch.to_bytes() if p.sketch is not None else None,
            }
            for key, sketched, p in rows
            if p.count
        ]
        with self.engine.begin() as conn:
            now = self.clock()
            if now - self._expired_at >= EXPIRE_EVERY_S:
                self._expired_at = now
                conn.execute(
                    delete(metric_rollups).where(
                        metric_rollups.c.second < int(now) - self.retention_s
                    )
                )
            if values:
                conn.execute(insert(metric_rollups), values)
                self._list_series(conn, {key: sketched for key, sketched, p in rows if p.count})

    def _list_series(self, conn: Connection, keys: dict[MetricKey, bool]) -> None:
        """Adds the series this gateway has not listed yet to `metric_series`."""
        t = metric_series.c
        if self._listed is None:
            rows = conn.execute(
                select(t.namespace, t.name, t.dimensions).where(t.gateway == self.gateway)
            )
            self._listed = {_key(*r) for r in rows}
        new = [k for k in keys if k not in self._listed]
        if new:
            conn.execute(
                insert(metric_series),
                [
                    {"gateway": self.gateway, "namespace": k.namespace, "name": k.name,
                     "dimensions": _dims(k), "sketched": keys[k]}
                    for k in new
                ],
            )  # fmt: skip
            self._listed.update(new)

    def read(
        self, keys: Iterable[MetricKey], start: int, end: int
    ) -> list[tuple[MetricKey, Point]]:
        """The other gateways' rollups of `keys` with start <= second < end."""
        wanted = set(keys)
        if not wanted or end <= start:
            return []
        t = metric_rollups.c
        query = select(
            t.namespace, t.name, t.dimensions, t.second, t.count, t.total, t.minimum,
            t.maximum, t.sketch,
        ).where(
            t.gateway != self.gateway, t.name.in_({k.name for k in wanted}),
            t.second >= start, t.second < end,
        )  # fmt: skip
        out = []
        with self.engine.connect() as conn:
            for namespace, name, dims, second, count, total, low, high, sketch in conn.execute(
                query
            ):
                key = _key(namespace, name, dims)
                if key not in wanted:
                    continue
                p = Point(int(second))
                p.count, p.total, p.minimum, p.maximum = int(count), total, low, high
                if sketch is not None:
                    p.sketch = Sketch.from_bytes(sketch)
                out.append((key, p))
        return out

    def keys(self, namespace: str | None, name: str | None) -> list[tuple[MetricKey, bool]]:
        """The other gateways' series."""
        t = metric_series.c
        query = select(t.namespace, t.name, t.dimensions, t.sketched).where(
            t.gateway != self.gateway
        )
        if namespace is not None:
            query = query.where(t.namespace == namespace)
        if name is not None:
            query = query.where(t.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(_key(r[0], r[1], r[2]), bool(r[3])) for r in rows]


class PublishingBackend:
    """A `MetricBackend` that hands every rollup it writes to `SharedRollups` too."""

    def __init__(self, inner: MetricBackend, shared: SharedRollups, rollup_period_s: int) -> None:
        self.inner = inner
        self.shared = shared
        self.rollup_period_s = rollup_period_s
        self._keys: dict[int, tuple[MetricKey, bool]] = {}

    def load_series(self) -> list[tuple[int, MetricKey, bool]]:
        found = self.inner.load_series()
        self._keys.update({sid: (key, sketched) for sid, key, sketched in found})
        return found

    def register(self, sid: int, key: MetricKey, sketched: bool) -> None:
        self._keys[sid] = (key, sketched)
        self.inner.register(sid, key, sketched)

    def write(self, resolution_s: int, rows: list[tuple[int, Point]]) -> None:
        self.inner.write(resolution_s, rows)
        if resolution_s != self.rollup_period_s:
            return
        shared = [(*self._keys[sid], p) for sid, p in rows if sid in self._keys]
        try:
            self.shared.publish(shared)
        except Exception:
            # The local copy is written; the others miss this minute of this gateway.
            log.warning("publishing %d metric rollups failed", len(shared), exc_info=True)

    def read(
        self, sids: list[int], resolution_s: int, start: int, end: int
    ) -> Iterable[tuple[int, Point]]:
        return self.inner.read(sids, resolution_s, start, end)

    def expire(self, resolution_s: int, before: int) -> None:
        self.inner.expire(resolution_s, before)
