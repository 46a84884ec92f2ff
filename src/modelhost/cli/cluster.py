"""`modelhost cluster up|down|status`: the shared services several gateways need, on this
machine, for tests and demos.

A cluster is a directory (default `<home>/cluster`) holding one sub-directory per part and
`cluster.json` (each part's settings, so `up` after `down` gives the same URLs): PostgreSQL,
the metadata store, and with `--nodes N` a Ray cluster of N nodes on this machine for the
Ray fleet provider (testing/ray.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import click

from modelhost.cli.common import Target, target_options
from modelhost.testing.postgres import PostgresCluster
from modelhost.testing.ray import RayCluster


class Part(Protocol):
    """One service of the local cluster (PostgreSQL, the Ray nodes)."""

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


# An instance asks for its type's vCPUs and memory times this on the local Ray cluster's
# 1-CPU nodes: an ml.m5.large (2 vCPU, 8 GiB) takes 0.2 CPU and 0.8 GiB (docs/scale-out.md).
LOCAL_RESOURCE_SCALE = 0.1


@dataclass
class RayPart:
    """A Ray head and `nodes - 1` more nodes on this machine (127.0.1.1, .2, ...)."""

    root: Path
    port: int
    nodes: int
    cpus_per_node: float = 1.0
    name: str = "ray"

    @property
    def cluster(self) -> RayCluster:
        return RayCluster(self.root, self.nodes, self.port, self.cpus_per_node)

    def up(self) -> None:
        cluster = self.cluster
        cluster.start()
        self.port = cluster.port

    def down(self, purge: bool = False) -> None:
        if purge:
            self.cluster.purge()
        else:
            self.cluster.stop()

    def running(self) -> bool:
        return self.cluster.running()

    def describe(self) -> str:
        cluster = self.cluster
        nodes = ", ".join(
            f"{address} {'up' if up else 'down'}" for address, up in cluster.node_states()
        )
        memory_mib = cluster.memory_bytes() / 2**20
        return (
            f"{self.name}: {self.nodes} nodes at {cluster.address} ({nodes}; "
            f"{self.cpus_per_node:g} CPU each; Ray's processes use {memory_mib:.0f} MiB)"
        )

    def settings(self) -> dict[str, str]:
        return {
            "MODELHOST_FLEET": "ray",
            "MODELHOST_RAY_ADDRESS": self.cluster.address,
            "MODELHOST_RAY_RESOURCE_SCALE": str(LOCAL_RESOURCE_SCALE),
        }


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

    def parts(self, postgres_port: int | None = None, nodes: int | None = None) -> list[Part]:
        state = self.load()
        saved = state.get("postgresql", {})
        port = postgres_port or saved.get("port", 0)
        parts: list[Part] = [PostgresPart(self.root / "postgresql", int(port))]
        ray = state.get("ray", {})
        nodes = nodes if nodes is not None else int(ray.get("nodes", 0))
        if nodes > 0:
            cpus = float(ray.get("cpus_per_node", 1.0))
            parts.append(RayPart(self.root / "ray", int(ray.get("port", 0)), nodes, cpus))
        return parts

    def save(self, parts: list[Part]) -> None:
        state: dict[str, dict[str, Any]] = {}
        for part in parts:
            state[part.name] = {"port": getattr(part, "port", 0)}
            if isinstance(part, RayPart):
                state[part.name].update(nodes=part.nodes, cpus_per_node=part.cpus_per_node)
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
    """A local cluster for several gateways: PostgreSQL, and Ray nodes for `--fleet ray`."""


@cluster.command("up")
@target_options
@_DIR
@click.option(
    "--postgres-port",
    type=int,
    default=None,
    help="Port of PostgreSQL on 127.0.0.1 [default: the one used before, else a free one].",
)
@click.option(
    "--nodes",
    type=click.IntRange(min=0),
    default=None,
    help="Ray nodes to run on this machine for `--fleet ray` (a head and N-1 more; 0: no Ray) "
    "[default: as before, else 0].",
)
def cluster_up(
    target: Target, directory: Path | None, postgres_port: int | None, nodes: int | None
) -> None:
    """Start the cluster's services (idempotent) and print the settings to use them."""
    local = _cluster(target, directory)
    parts = local.parts(postgres_port, nodes)
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
