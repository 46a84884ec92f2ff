"""`modelhost cluster up|down|status`: the shared services several gateways need, on this
machine, for tests and demos.

A cluster is a directory (default `<home>/cluster`) holding one sub-directory per part and
`cluster.json` (each part's settings, so `up` after `down` gives the same URLs). Today the
one part is PostgreSQL, the metadata store; the Ray head and worker nodes of the Ray fleet
provider become further parts (`Part`), started by the same `up` (`--nodes`) and stopped by
the same `down`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import click

from modelhost.cli.common import Target, target_options
from modelhost.testing.postgres import PostgresCluster


class Part(Protocol):
    """One service of the local cluster (PostgreSQL; Ray head and nodes later)."""

    name: str

    def up(self) -> None: ...
    def down(self, purge: bool = False) -> None: ...
    def running(self) -> bool: ...
    def describe(self) -> str: ...
    def settings(self) -> dict[str, str]:
        """The `MODELHOST_*` settings a gateway needs to use this part."""
        ...


@dataclass
class PostgresPart:
    """The metadata store: a durable PostgreSQL cluster on 127.0.0.1."""

    root: Path
    port: int
    name: str = "postgresql"

    @property
    def server(self) -> PostgresCluster:
        return PostgresCluster(self.root, self.port, durable=True)

    def up(self) -> None:
        server = self.server
        if server.running_port() is None:
            server.start()
            self.port = server.port
        else:
            self.port = server.running_port() or self.port

    def down(self, purge: bool = False) -> None:
        if purge:
            self.server.purge()
        else:
            self.server.stop()

    def running(self) -> bool:
        return self.server.running_port() is not None

    def describe(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"{self.name}: {state} on 127.0.0.1:{self.port} (data in {self.root})"

    def settings(self) -> dict[str, str]:
        return {"MODELHOST_DATABASE_URL": self.server.url}


@dataclass
class LocalCluster:
    """The parts of the cluster in `root`, and their saved settings (`cluster.json`)."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    def load(self) -> dict[str, Any]:
        if self.state_file.exists():
            loaded: dict[str, Any] = json.loads(self.state_file.read_text())
            return loaded
        return {}

    def parts(self, postgres_port: int | None = None) -> list[Part]:
        saved = self.load().get("postgresql", {})
        port = postgres_port or saved.get("port", 0)
        return [PostgresPart(self.root / "postgresql", int(port))]

    def save(self, parts: list[Part]) -> None:
        state = {p.name: {"port": getattr(p, "port", 0)} for p in parts}
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")


def _cluster(target: Target, directory: Path | None) -> LocalCluster:
    if directory is not None:
        return LocalCluster(directory.expanduser().resolve())
    return LocalCluster(target.settings.home / "cluster")


def _print_settings(parts: list[Part]) -> None:
    for part in parts:
        click.echo(part.describe())
    click.echo("# point every gateway at it:")
    for part in parts:
        for key, value in part.settings().items():
            click.echo(f"export {key}={value}")


_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of the cluster's data [default: <home>/cluster].",
)


@click.group()
def cluster() -> None:
    """A local cluster for several gateways: PostgreSQL (Ray nodes come with the Ray fleet)."""


@cluster.command("up")
@target_options
@_DIR
@click.option(
    "--postgres-port",
    type=int,
    default=None,
    help="Port of PostgreSQL on 127.0.0.1 [default: the one used before, else a free one].",
)
def cluster_up(target: Target, directory: Path | None, postgres_port: int | None) -> None:
    """Start the cluster's services (idempotent) and print the settings to use them."""
    local = _cluster(target, directory)
    parts = local.parts(postgres_port)
    for part in parts:
        try:
            part.up()
        except RuntimeError as exc:
            raise click.ClickException(f"{part.name}: {exc}") from None
    local.save(parts)
    _print_settings(parts)


@cluster.command("down")
@target_options
@_DIR
@click.option("--purge", is_flag=True, help="Delete the services' data too.")
def cluster_down(target: Target, directory: Path | None, purge: bool) -> None:
    """Stop the cluster's services (their data stays for the next `up`, unless --purge)."""
    local = _cluster(target, directory)
    for part in reversed(local.parts()):
        part.down(purge)
        click.echo(part.describe())


@cluster.command("status")
@target_options
@_DIR
def cluster_status(target: Target, directory: Path | None) -> None:
    """Show each service and the settings that use it."""
    _print_settings(_cluster(target, directory).parts())
