"""An instance: one process serving the container contract at an address (a TCP host and
port, and for built-in runtimes on this machine a Unix domain socket as well)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhost.resources.status import InstanceStatus
from modelhost.routing.table import Address, TargetMode, TcpAddress, UnixAddress

if TYPE_CHECKING:
    from modelhost.store.cache_bound import Leased


@dataclass
class NodeArtifact:
    """What a node needs to fetch an instance's model directory itself, for a provider
    whose instances run on other machines (`fleet/ray`): the container's ModelDataUrl or
    ModelDataSource.S3DataSource (neither: the model has no artifact of its own, e.g. a
    multi-model instance) and the artifact store's configuration as the gateway's settings
    give it (`fleet/launch.node_store_config`). `store` may hold S3 credentials, so it is
    kept out of the repr (and every log line made from it)."""

    model_data_url: str | None = None
    model_data_source: dict[str, Any] | None = None
    store: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def location(self) -> str | None:
        """The artifact's URL (or path), for log lines."""
        if self.model_data_source is not None:
            return str(self.model_data_source.get("S3Uri"))
        return self.model_data_url


@dataclass
class LaunchSpec:
    """Everything needed to start one instance of a production variant."""

    endpoint_name: str
    variant_name: str
    model_name: str
    argv: list[str]
    env: dict[str, str]
    model_dir: Path
    log_dir: Path
    # Built-in instances answer /ping with 500 only when the model cannot load, so that
    # fails a start at once; a user's server may answer errors while it warms up.
    builtin: bool = True
    # Multi-model (Mode MultiModel): the ModelDataUrl prefix TargetModels are read under.
    model_data_prefix: str | None = None
    # The process's memory limit (fleet/limits.py): a serverless variant's MemorySizeInMB.
    memory_limit_bytes: int | None = None
    # Whether a built-in runtime's zygote may fork it (fleet/zygote.py); the members of a
    # multi-container instance are spawned.
    forkable: bool = True
    # Set when the provider's nodes fetch the artifact themselves (fleet 'ray'): model_dir
    # is then only an empty placeholder on the gateway, and the node's own copy replaces it.
    node_artifact: NodeArtifact | None = None
    # The instances outlive the gateway that started them where the provider can do that
    # (Ray's detached actors): an endpoint variant's, so the next leader adopts them.
    detached: bool = False
    # The model and config the instances run (`launch.launch_fingerprint`): an instance
    # found running with another one is stale and not adopted.
    fingerprint: str = ""
    # The artifact cache entries this spec's instances run from, leased while its fleet
    # lives (`FleetManager`) so that the bounded cache never evicts them.
    leases: tuple[Leased, ...] = field(default=(), repr=False, compare=False)


@dataclass(eq=False)
class Instance:
    """A running (or starting) instance; a routing `Target`. `outstanding` is read by
    routing (LOR). `host` and `port` are where it listens on TCP: loopback for local
    processes, another machine's address for instances placed elsewhere. `unix_path`, when
    set, is a Unix domain socket it listens on too (built-in runtimes started on this
    machine): `address`, what the gateway connects to, is then that socket."""

    instance_id: str
    spec: LaunchSpec
    port: int
    pid: int
    log_path: Path
    status: InstanceStatus = InstanceStatus.STARTING
    outstanding: int = 0
    failed_pings: int = 0
    # Multi-model: the TargetModels this instance holds, as far as the gateway has seen
    # (loads it asked for, minus what the instance reported unloading or answered 404 for).
    models: set[str] = field(default_factory=set)
    started_s: float = field(default_factory=time.time)
    host: str = "127.0.0.1"
    unix_path: str | None = None

    def __post_init__(self) -> None:
        self.listen_at(self.host, self.port)

    def listen_at(self, host: str, port: int) -> None:
        """Where the instance listens, once known (a Ray-placed one says so after it
        starts). The addresses are built here once: the request path reads them for every
        invocation."""
        self.host, self.port = host, port
        self.tcp_address = TcpAddress(host, port)
        self.address: Address = UnixAddress(self.unix_path) if self.unix_path else self.tcp_address

    @property
    def mode(self) -> TargetMode:
        if self.spec.model_data_prefix is not None:
            return TargetMode.MULTI_MODEL
        return TargetMode.SINGLE_MODEL

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"
