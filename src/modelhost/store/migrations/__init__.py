"""Schema migrations of the metadata store (Alembic), for SQLite and PostgreSQL alike.

`upgrade` runs at every start: it brings any database to the newest revision in
`versions/`. A SQLite file made before migrations existed (by `metadata.create_all`) has
the baseline's tables but no version: it is stamped at the baseline first, then upgraded.

A new table or column on `metadata` needs a revision (tests/store/test_migrations.py fails
without one). Write it with one command, from the repository root:

    python -m modelhost.store.migrations revision -m "async queue"

which autogenerates `versions/v000N_async_queue.py` from the difference between
`metadata` and a scratch database at the current head; read it, then commit it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

HERE = Path(__file__).resolve().parent
BASELINE = "0001"
# Several gateways may start at once on one PostgreSQL: one migrates, the others wait on
# this transaction-scoped advisory lock (any constant unique to modelhost).
MIGRATION_LOCK_KEY = 0x6D686D67  # "mhmg"
# Alembic's `context` is one global per process: migrations in one process take turns.
_PROCESS_LOCK = threading.Lock()


def config(connection: Connection | None = None, target: MetaData | None = None) -> Config:
    """Alembic's config for our script directory, run on `connection` (no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    cfg.attributes["connection"] = connection
    cfg.attributes["target_metadata"] = target
    return cfg


def head() -> str:
    rev = ScriptDirectory.from_config(config()).get_current_head()
    assert rev is not None
    return rev


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest revision (adopting a pre-migration SQLite file)."""
    with _PROCESS_LOCK, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        elif conn.dialect.name == "sqlite":
            # The write lock first, so a second process waits rather than races.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        cfg = config(conn)
        if current(conn) is None and inspect(conn).has_table("resources"):
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, "head")


def schema_diff(connection: Connection, target: MetaData) -> list[Any]:
    """What `target` has that the database lacks (and the reverse); [] when in step."""
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(ctx, target))


def next_revision_id() -> str:
    return f"{int(head()) + 1:04d}"
