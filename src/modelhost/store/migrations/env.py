"""Alembic's environment: always run by `modelhost.store.migrations` on a connection it
opened (never from an alembic.ini), so the URL comes from the settings like everywhere."""

from __future__ import annotations

from alembic import context

# Both come from `modelhost.store.migrations.config` (the tables are the store's `metadata`).
connection = context.config.attributes["connection"]
metadata = context.config.attributes["target_metadata"]
# Batch mode lets one migration alter columns on SQLite too (it copies the table there;
# PostgreSQL gets plain ALTERs).
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
