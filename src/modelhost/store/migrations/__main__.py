"""`python -m modelhost.store.migrations revision -m MESSAGE`: autogenerate the next
revision from `metadata` against a scratch SQLite database at the current head.

`python -m modelhost.store.migrations upgrade URL` migrates a database by hand (the
gateway does it at every start anyway).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from modelhost.store import migrations
from modelhost.store.metadata import metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modelhost.store.migrations")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="autogenerate the next revision from metadata")
    rev.add_argument("-m", "--message", required=True)
    up = sub.add_parser("upgrade", help="migrate the database at URL to the newest revision")
    up.add_argument("url")
    args = parser.parse_args(argv)
    if args.cmd == "upgrade":
        migrations.upgrade(create_engine(args.url))
        return
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        migrations.upgrade(engine)
        with engine.begin() as conn:
            command.revision(
                migrations.config(conn, metadata),
                message=args.message,
                autogenerate=True,
                rev_id=migrations.next_revision_id(),
            )
        engine.dispose()


if __name__ == "__main__":
    main()
