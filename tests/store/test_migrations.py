"""Alembic migrations: every table and column of `metadata` has one, on SQLite and
PostgreSQL; a SQLite file from before migrations is adopted; gateways starting together
migrate once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, create_engine, insert

from modelhost.store import migrations
from modelhost.store.metadata import Kind, MetadataStore, metadata, resources


def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return migrations.schema_diff(conn, metadata)
    finally:
        engine.dispose()


def test_every_table_and_column_has_a_migration(metadata_url: str) -> None:
    """Fails when a table or column is added to `metadata` without a revision: write one
    with `python -m modelhost.store.migrations revision -m "what changed"`."""
    MetadataStore(metadata_url).close()
    diff = _diff(metadata_url)
    assert diff == [], (
        "the migrated schema differs from store/metadata.py's `metadata`; add a revision: "
        f'python -m modelhost.store.migrations revision -m "..." ({diff})'
    )
    engine = create_engine(metadata_url)
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
    engine.dispose()


def test_a_column_without_a_migration_is_caught(metadata_url: str) -> None:
    MetadataStore(metadata_url).close()
    grown = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(grown)
    grown.tables["resources"].append_column(Column("owner_id", Integer, nullable=True))
    engine = create_engine(metadata_url)
    with engine.connect() as conn:
        diff = migrations.schema_diff(conn, grown)
    engine.dispose()
    assert [d[0] for d in diff] == ["add_column"]


def test_a_sqlite_file_from_before_migrations_is_adopted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'modelhost.db'}"
    engine = create_engine(url)
    resources.create(engine)  # what `metadata.create_all` made before migrations
    with engine.begin() as conn:
        conn.execute(
            insert(resources).values(
                kind="model", name="old", arn="arn:old", spec={"A": 1}, tags=[],
                status=None, failure_reason=None, created_s=1.0, modified_s=1.0,
            )
        )  # fmt: skip
    engine.dispose()
    store = MetadataStore(url)
    got = store.get(Kind.MODEL, "old")
    store.close()
    assert got is not None and got.spec == {"A": 1}
    assert _diff(url) == []
    engine = create_engine(url)
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
    engine.dispose()


def test_gateways_starting_together_migrate_once(metadata_url: str) -> None:
    """Three processes migrate one empty database at once (as gateways starting together):
    all succeed and the schema is whole."""
    argv = [sys.executable, "-m", "modelhost.store.migrations", "upgrade", metadata_url]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert _diff(metadata_url) == []
