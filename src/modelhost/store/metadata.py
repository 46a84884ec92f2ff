"""Metadata store: models, endpoint configs and endpoints, through SQLAlchemy.

SQLite in the home directory by default; any SQLAlchemy URL (PostgreSQL) works the same.
Specs are stored as the JSON the API accepted, so Describe answers echo what was given.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
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


class Kind(StrEnum):
    MODEL = "model"
    ENDPOINT_CONFIG = "endpoint-config"
    ENDPOINT = "endpoint"
    ALARM = "alarm"
    TRANSFORM_JOB = "transform-job"
    COMPILATION_JOB = "compilation-job"
    RECOMMENDATION_JOB = "recommendation-job"


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


class AlreadyExists(Exception):
    """Raised by `MetadataStore.create` when the (kind, name) pair is taken."""


class MetadataStore:
    """CRUD over resources. Thread-safe; every call is one short transaction."""

    def __init__(self, url: str) -> None:
        is_sqlite = url.startswith("sqlite")
        self._engine: Engine = create_engine(
            url,
            json_serializer=lambda obj: json.dumps(obj, separators=(",", ":")),
            connect_args={"check_same_thread": False} if is_sqlite else {},
        )
        if is_sqlite:
            event.listen(self._engine, "connect", _sqlite_pragmas)
        metadata.create_all(self._engine)
        # SQLite allows one writer; serialising writes here avoids "database is locked".
        self._write_lock = threading.Lock()

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._write_lock, self._engine.begin() as conn:
            yield conn

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

    def save(self, record: Record) -> None:
        """Overwrite the mutable fields of an existing record."""
        with self._tx() as conn:
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

    def delete(self, kind: Kind, name: str) -> bool:
        with self._tx() as conn:
            result = conn.execute(
                delete(resources).where(resources.c.kind == kind, resources.c.name == name)
            )
        return bool(result.rowcount)


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
