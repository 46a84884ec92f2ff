"""A real PostgreSQL server on loopback for tests, demos and `modelhost cluster up`.

The binaries are Debian's (`apt-get install postgresql`: /usr/lib/postgresql/<v>/bin), or
`initdb`/`pg_ctl` on PATH. PostgreSQL refuses to run as root, so as root the cluster's
directory is handed to the `postgres` user (the Debian package creates it) and the
binaries run as that user; as anyone else they run as that user.

`local_postgres_server()` is a throwaway cluster in a temp dir (fsync off), torn down on
exit. `PostgresCluster` is the same cluster in a directory that outlives the process (the
CLI starts and stops it).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhost.fleet.local import free_port

SUPERUSER = "modelhost"
DATABASE = "modelhost"


def postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are (the newest installed version), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _run_as() -> dict[str, Any]:
    """subprocess arguments that drop root to the `postgres` user (nothing otherwise)."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "PostgreSQL does not run as root and there is no 'postgres' user: "
            "apt-get install postgresql (it creates one)"
        ) from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@dataclass
class PostgresCluster:
    """One PostgreSQL cluster (data directory + server) on 127.0.0.1."""

    root: Path
    port: int = 0
    durable: bool = True

    @functools.cached_property
    def data_dir(self) -> Path:
        """`root/data`; as root, when the `postgres` user cannot reach `root` (under a 0700
        home such as /root), a directory of its own in its home, named after `root`."""
        if os.geteuid() != 0 or _reachable_by_postgres(self.root):
            return self.root / "data"
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        return Path(pwd.getpwnam("postgres").pw_dir) / "modelhost" / digest / "data"

    @property
    def url(self) -> str:
        return self.database_url(DATABASE)

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def _bin(self, name: str) -> str:
        found = postgres_bin_dir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql")
        return str(found / name)

    def _run(self, *argv: str) -> str:
        proc = subprocess.run(
            argv, capture_output=True, text=True, cwd=self.data_dir.parent, check=False, **_run_as()
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed: {proc.stderr or proc.stdout}")
        return proc.stdout

    def init(self) -> None:
        """Create the directory and the cluster (once), owned by the user that runs it."""
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            run_as = _run_as()
            for path in (self.root, self.data_dir.parent):
                path.mkdir(parents=True, exist_ok=True)
                os.chown(path, run_as["user"], run_as["group"])
        if (self.data_dir / "PG_VERSION").exists():
            return
        # trust on loopback only: the server listens on 127.0.0.1 and nothing else.
        self._run(
            self._bin("initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server on `port` (a free one when 0) and create the database."""
        self.init()
        if self.port == 0:
            self.port = free_port()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.data_dir.parent}",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            self._bin("pg_ctl"), "start", "-D", str(self.data_dir), "-w",
            "-t", str(int(timeout_s)), "-l", str(self.data_dir.parent / "postgres.log"),
            "-o", " ".join(options),
        )  # fmt: skip
        self.create_database(DATABASE, exist_ok=True)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run(self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-w", "-m", "fast")

    def running_port(self) -> int | None:
        """The port of the server running on this directory, or None."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        # postmaster.pid: pid, data dir, start time, port, socket dir, ...
        try:
            os.kill(int(lines[0]), 0)
        except (OSError, ValueError, IndexError):
            return None
        return int(lines[3])

    def purge(self) -> None:
        """Stop the server and delete its data."""
        self.stop()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str, exist_ok: bool = False) -> str:
        """Create database `name` (letters, digits and _); return its URL."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            exists = conn.execute(query, (name,)).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{name}"')
            elif not exist_ok:
                raise RuntimeError(f"database {name} exists")
        return self.database_url(name)

    def fresh_database_url(self) -> str:
        """A new, empty database on this server: tests share a server, never a database."""
        return self.create_database(f"t_{uuid.uuid4().hex[:16]}")


def _reachable_by_postgres(path: Path) -> bool:
    """Whether the `postgres` user can enter `path` (or would, once it is created)."""
    while not path.exists():
        path = path.parent
    probe = subprocess.run(["test", "-x", str(path)], check=False, **_run_as())
    return probe.returncode == 0


@contextmanager
def local_postgres_server(timeout_s: float = 60.0) -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL (fsync off) in a temp dir on a free loopback port; `.url`
    names its `modelhost` database, `.fresh_database_url()` makes more."""
    root = Path(tempfile.mkdtemp(prefix="modelhost-pg-"))
    cluster = PostgresCluster(root, durable=False)
    try:
        cluster.start(timeout_s)
        yield cluster
    finally:
        cluster.purge()
