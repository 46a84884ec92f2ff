"""Metadata store: models, endpoint configs and endpoints, through SQLAlchemy.

SQLite in the home directory by default; any SQLAlchemy URL (PostgreSQL:
`postgresql+psycopg://...`, extra `modelhost[postgres]`) works the same. The schema is
Alembic's (`store/migrations/`), brought up to date when the store opens. Specs are stored
as the JSON the API accepted, so Describe answers echo what was given.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from modelhost.store import migrations


class Kind(StrEnum):
    MODEL = "model"
    ENDPOINT_CONFIG = "endpoint-config"
    ENDPOINT = "endpoint"
    ALARM = "alarm"
    TRANSFORM_JOB = "transform-job"
    COMPILATION_JOB = "compilation-job"
    RECOMMENDATION_JOB = "recommendation-job"
    SCALABLE_TARGET = "scalable-target"
    SCALING_POLICY = "scaling-policy"
    SCHEDULED_ACTION = "scheduled-action"
    SCALING_ACTIVITY = "scaling-activity"
    PROCESSING_JOB = "processing-job"
    MONITORING_SCHEDULE = "monitoring-schedule"
    DATA_QUALITY_JOB_DEFINITION = "data-quality-job-definition"
    MODEL_QUALITY_JOB_DEFINITION = "model-quality-job-definition"
    # The kind column holds 32 characters: "model-explainability-..." would not fit.
    EXPLAINABILITY_JOB_DEFINITION = "explainability-job-definition"


metadata = MetaData()

resources = Table(
    "resources",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("arn", String(512), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("status", String(32), nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("created_s", Float, nullable=False),
    Column("modified_s", Float, nullable=False),
)

# Several gateways: the leader's routing snapshot of each endpoint (routing/wire.py's
# document), read by the others (store/coordination.py).
routing_tables = Table(
    "routing_tables",
    metadata,
    Column("endpoint", String(128), primary_key=True),
    Column("route", JSON, nullable=False),
    Column("publisher", String(128), nullable=False),
    Column("modified_s", Float, nullable=False),
)

# The async-inference queue (store/queue.py has its operations).
async_requests = Table(
    "async_requests",
    metadata,
    Column("request_id", String(64), primary_key=True),  # names the output object
    Column("endpoint", String(128), nullable=False),
    Column("inference_id", String(64), nullable=False),
    Column("input_location", Text, nullable=True),
    Column("payload", LargeBinary, nullable=True),  # an inline Body (≤128,000 bytes)
    Column("headers", JSON, nullable=False),  # ContentType, Accept, CustomAttributes
    Column("output_location", Text, nullable=False),
    Column("failure_location", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("received_s", Float, nullable=False),
    Column("expires_s", Float, nullable=False),  # received_s + RequestTTLSeconds
    Column("invocation_timeout_s", Float, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_s", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("finished_s", Float, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("response_type", String(256), nullable=True),  # the model's Content-Type
    Column("notify_pending", Boolean, nullable=False, default=False),
    Index("ix_async_requests_endpoint_inference", "endpoint", "inference_id", unique=True),
    Index("ix_async_requests_status_received", "status", "received_s"),
)


# Access keys (gateway/auth/key_table.py), when the store is shared by several gateways:
# the secret is Fernet ciphertext under the master key every gateway is given.
access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key_id", String(32), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("endpoints", String(256), nullable=False),
    Column("created_s", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("bootstrap", Boolean, nullable=False),
    Column("secret_token", Text, nullable=False),
)

# Several gateways: each writes its metric series' completed minute rollups here, and
# reads the others' (telemetry/shared_rollups.py), so the CloudWatch API and the alarms
# see the whole fleet's traffic. The 1-second tier stays in each gateway's metrics.db.
metric_rollups = Table(
    "metric_rollups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gateway", String(64), nullable=False),
    Column("namespace", String(256), nullable=False),
    Column("name", String(256), nullable=False),
    Column("dimensions", Text, nullable=False),  # JSON of the sorted (name, value) pairs
    Column("sketched", Boolean, nullable=False),
    Column("second", Integer, nullable=False),  # the minute's first second
    Column("count", Integer, nullable=False),
    Column("total", Float, nullable=False),
    Column("minimum", Float, nullable=False),
    Column("maximum", Float, nullable=False),
    Column("sketch", LargeBinary, nullable=True),
    Index("ix_metric_rollups_name_second", "name", "second"),
)
# The series each gateway has published rollups of (what ListMetrics lists of the others').
metric_series = Table(
    "metric_series",
    metadata,
    Column("gateway", String(64), primary_key=True),
    Column("namespace", String(256), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("dimensions", Text, primary_key=True),
    Column("sketched", Boolean, nullable=False),
)

# Several gateways: the leader's epoch, one more every time a gateway takes the leader
# lock (`key` is the lock's). Leader-only writes check it in their own transaction
# (store/fencing.py), so a deposed leader that has not noticed yet writes nothing.
leadership = Table(
    "leadership",
    metadata,
    Column("key", BigInteger, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False),
    Column("holder", String(128), nullable=False),
    Column("taken_s", Float, nullable=False),
)


@dataclass
class Record:
    """One stored resource. `spec` is the accepted request (endpoints add runtime state)."""

    kind: Kind
    name: str
    arn: str
    spec: dict[str, Any]
    tags: list[dict[str, str]] = field(default_factory=list)
    status: str | None = None
    failure_reason: str | None = None
    created_s: float = 0.0
    modified_s: float = 0.0


class Fence(Protocol):
    """A condition a write checks in its own transaction, raising `FencedOut` when this
    gateway may no longer make it (store/fencing.py: the leader's epoch, a job's claim)."""

    def check(self, conn: Connection) -> None: ...


class AlreadyExists(Exception):
    """Raised by `MetadataStore.create` when the (kind, name) pair is taken."""


class MetadataStore:
    """CRUD over resources. Thread-safe; every call is one short transaction."""

    def __init__(self, url: str) -> None:
        is_sqlite = self._is_sqlite = url.startswith("sqlite")
        self._engine: Engine = create_engine(
            url,
            json_serializer=lambda obj: json.dumps(obj, separators=(",", ":")),
            connect_args={"check_same_thread": False} if is_sqlite else {},
            # A PostgreSQL server may restart under a long-running gateway.
            pool_pre_ping=not is_sqlite,
        )
        if is_sqlite:
            event.listen(self._engine, "connect", _sqlite_pragmas)
        migrations.upgrade(self._engine)
        # SQLite allows one writer; serialising writes here avoids "database is locked".
        self._write_lock = threading.Lock()

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._write_lock, self._engine.begin() as conn:
            yield conn

    @property
    def engine(self) -> Engine:
        """The engine, for other tables on `metadata` (the async queue, coordination)."""
        return self._engine

    def transaction(self) -> AbstractContextManager[Connection]:
        """One write transaction, serialised with this store's own writes (SQLite)."""
        return self._tx()

    def create(self, record: Record) -> None:
        try:
            with self._tx() as conn:
                conn.execute(insert(resources).values(**_row(record)))
        except IntegrityError as exc:
            raise AlreadyExists(f"{record.kind} {record.name}") from exc

    def get(self, kind: Kind, name: str) -> Record | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(resources).where(resources.c.kind == kind, resources.c.name == name)
            ).first()
        return _record(row._mapping) if row is not None else None

    def list(self, kind: Kind) -> list[Record]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(resources).where(resources.c.kind == kind)).all()
        return [_record(r._mapping) for r in rows]

    def save(self, record: Record, fence: Fence | None = None) -> None:
        """Overwrite the mutable fields of an existing record (if `fence` holds)."""
        with self._tx() as conn:
            if fence is not None:
                self._begin_write(conn)
                fence.check(conn)
            conn.execute(
                update(resources)
                .where(resources.c.kind == record.kind, resources.c.name == record.name)
                .values(
                    spec=record.spec,
                    tags=record.tags,
                    status=record.status,
                    failure_reason=record.failure_reason,
                    modified_s=record.modified_s,
                )
            )

    def _begin_write(self, conn: Connection) -> None:
        if self._is_sqlite:
            # pysqlite begins only at the first write: take the write lock up front.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def update(
        self,
        kind: Kind,
        name: str,
        change: Callable[[Record], None],
        fence: Fence | None = None,
    ) -> Record | None:
        """Read-modify-write one record under a row lock (`SELECT ... FOR UPDATE` on
        PostgreSQL; SQLite has one writer), so updaters in other gateways never lose each
        other's changes. `change` edits the record in place (an exception it raises
        writes nothing); None if there is none. With a `fence`, only while it holds."""
        with self._tx() as conn:
            self._begin_write(conn)
            if fence is not None:
                fence.check(conn)
            row = conn.execute(
                select(resources)
                .where(resources.c.kind == kind, resources.c.name == name)
                .with_for_update()
            ).first()
            if row is None:
                return None
            record = _record(row._mapping)
            change(record)
            conn.execute(
                update(resources)
                .where(resources.c.kind == kind, resources.c.name == name)
                .values(**{k: v for k, v in _row(record).items() if k not in _KEY})
            )
        return record

    def delete(self, kind: Kind, name: str, fence: Fence | None = None) -> bool:
        with self._tx() as conn:
            if fence is not None:
                self._begin_write(conn)
                fence.check(conn)
            result = conn.execute(
                delete(resources).where(resources.c.kind == kind, resources.c.name == name)
            )
        return bool(result.rowcount)


_KEY = ("kind", "name", "arn", "created_s")


def _row(record: Record) -> dict[str, Any]:
    return {
        "kind": str(record.kind),
        "name": record.name,
        "arn": record.arn,
        "spec": record.spec,
        "tags": record.tags,
        "status": record.status,
        "failure_reason": record.failure_reason,
        "created_s": record.created_s,
        "modified_s": record.modified_s,
    }


def _record(m: Any) -> Record:
    return Record(
        kind=Kind(m["kind"]),
        name=m["name"],
        arn=m["arn"],
        spec=m["spec"],
        tags=m["tags"],
        status=m["status"],
        failure_reason=m["failure_reason"],
        created_s=m["created_s"],
        modified_s=m["modified_s"],
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (Describe/List) run while the control loop writes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
