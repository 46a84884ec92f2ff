"""Access keys in the metadata database, for several gateways on one PostgreSQL.

`KeyTable` is a `KeyRecords` over the `access_keys` table: every gateway reads the whole
table (a handful of rows) every `REFRESH_S` off the request path (the gateway's key loop),
so a key created or revoked through one gateway is honoured by the others within a
second; the request path only reads memory. The secrets stay Fernet ciphertext under the
master key, which every gateway must be given (the same `auth/master.key`, or the shared
secret-key setting), so a copy of the database reveals no secret.

A home that kept its keys in `auth/keys.json` before is imported once when its gateway
first opens the shared store (`import_file`): rows the table lacks are inserted, and the
file is renamed `keys.json.imported` so it is not imported again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from sqlalchemy import create_engine, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from modelhost.gateway.auth.keys import AccessKey, KeyStore, _write_private, auth_dir
from modelhost.settings import Settings
from modelhost.store.coordination import is_postgres
from modelhost.store.metadata import access_keys

log = logging.getLogger("modelhost.auth")

REFRESH_S = 0.5  # how stale another gateway's key change may be seen here
DATABASE_FILE = "database-url"  # in auth/: where this home's keys are


def _key(row: object) -> AccessKey:
    m = row._mapping  # type: ignore[attr-defined]
    return AccessKey(
        access_key_id=m["access_key_id"],
        role=m["role"],
        endpoints=m["endpoints"],
        created_s=m["created_s"],
        status=m["status"],
        bootstrap=bool(m["bootstrap"]),
        secret_token=m["secret_token"],
    )


class KeyTable:
    """`KeyRecords` on the `access_keys` table of the metadata database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._last: list[AccessKey] | None = None

    def read(self) -> list[AccessKey] | None:
        with self.engine.connect() as conn:
            keys = [_key(r) for r in conn.execute(select(access_keys))]
        if keys == self._last:
            return None
        self._last = keys
        return keys

    def write(self, changed: AccessKey, every: list[AccessKey]) -> None:
        values = {
            "role": changed.role,
            "endpoints": changed.endpoints,
            "created_s": changed.created_s,
            "status": changed.status,
            "bootstrap": changed.bootstrap,
            "secret_token": changed.secret_token,
        }
        with self.engine.begin() as conn:
            done = conn.execute(
                update(access_keys)
                .where(access_keys.c.access_key_id == changed.access_key_id)
                .values(**values)
            )
            if not done.rowcount:
                conn.execute(
                    insert(access_keys).values(access_key_id=changed.access_key_id, **values)
                )
        self._last = None  # the next read returns the table as it is now

    def import_file(self, path: Path) -> int:
        """Insert the keys of a home's `keys.json` that the table lacks; rename the file.
        Returns how many were imported."""
        try:
            rows = json.loads(path.read_text())
        except FileNotFoundError:
            return 0
        with self.engine.begin() as conn:
            have = set(conn.execute(select(access_keys.c.access_key_id)).scalars())
            new = [row for row in rows if row["access_key_id"] not in have]
            for row in new:
                conn.execute(insert(access_keys).values(**row))
        path.rename(path.with_name(path.name + ".imported"))
        self._last = None
        log.info("imported %d access key(s) from %s into the metadata database", len(new), path)
        return len(new)


def open_key_store(
    home: Path,
    database_url: str | None,
    engine: Engine | None = None,
    settings: Settings | None = None,
) -> KeyStore:
    """The home's keys: in the database when it is PostgreSQL (shared by the gateways),
    else in `auth/keys.json`. `engine` is the gateway's own; the CLI opens one."""
    if database_url is None or not is_postgres(database_url):
        return KeyStore(home, settings)
    return KeyStore(home, settings, KeyTable(engine or create_engine(database_url)))


def gateway_key_store(
    home: Path, database_url: str | None, engine: Engine, settings: Settings | None = None
) -> KeyStore:
    """The gateway's keys; on PostgreSQL, this home's `keys.json` imported first, and the
    database URL recorded (0600, beside the master key) so that `modelhost credentials
    --home` finds the bootstrap key as it did in `keys.json`."""
    keys = open_key_store(home, database_url, engine, settings)
    if isinstance(keys.records, KeyTable) and database_url is not None:
        keys.records.import_file(keys.path)
        keys.dir.mkdir(parents=True, exist_ok=True)
        _write_private(keys.dir / DATABASE_FILE, database_url.encode())
    return keys


async def refresh_loop(keys: KeyStore) -> None:
    """Keys in the shared database: another gateway's create or revoke is seen here within
    REFRESH_S (the request path reads only memory)."""
    while True:
        await asyncio.sleep(REFRESH_S)
        try:
            await asyncio.to_thread(keys.refresh)
        except Exception:
            log.warning("reading the access keys failed; retrying", exc_info=True)


def bootstrap_credentials(
    home: Path, database_url: str | None, settings: Settings | None = None
) -> tuple[str, str] | None:
    """The bootstrap admin key for the local CLI and test helpers; None if unreachable.
    Without `database_url`, the one the home's gateway recorded, if any."""
    if database_url is None:
        try:
            database_url = (auth_dir(home) / DATABASE_FILE).read_text().strip() or None
        except OSError:
            database_url = None
    if database_url is None or not is_postgres(database_url):
        return KeyStore(home, settings).bootstrap_credentials()
    engine = create_engine(database_url)
    try:
        return open_key_store(home, database_url, engine, settings).bootstrap_credentials()
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
