"""Routing snapshots. The control plane builds a new `RoutingTable` and swaps it in whole;
the request path only ever reads one snapshot, so it needs no locks and never sees a
half-applied change (Ray Serve's long-poll snapshots work the same way)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol

from modelhost.resources.capture import CaptureConfig


class AddressKind(StrEnum):
    """How the gateway reaches an instance's container-contract server."""

    TCP = "tcp"  # host and port: any machine, and every server that only speaks TCP
    UNIX = "unix"  # a Unix domain socket: built-in runtimes on this machine


class TcpAddress(NamedTuple):
    """(host, port) of an instance's server; any machine, not only this one."""

    host: str
    port: int

    @property
    def kind(self) -> AddressKind:
        return AddressKind.TCP


class UnixAddress(str):
    """The path of a Unix domain socket an instance on this machine listens on. A `str`,
    so code that takes a socket path as a string (asyncio, a streamed answer's opener)
    takes it as it is."""

    __slots__ = ()

    @property
    def path(self) -> str:
        return str(self)

    @property
    def kind(self) -> AddressKind:
        return AddressKind.UNIX


Address = TcpAddress | UnixAddress
"""Where an instance listens, tagged by its type (a tuple or a str: hashed and compared
in C, so the connection pool keys on them at no cost)."""


class TargetMode(StrEnum):
    """What an instance serves, so the data plane picks the invoker for it."""

    SINGLE_MODEL = "SingleModel"
    MULTI_MODEL = "MultiModel"  # TargetModel → /models API, loaded on demand
    MULTI_CONTAINER = "MultiContainer"  # a serial pipeline or direct invocation


class Target(Protocol):
    """An instance as the request path sees it in a snapshot: where it listens, what it
    serves, what it holds (multi-model), and a live-request counter for least-outstanding
    picking (the one mutable field: the request path counts its own requests in it)."""

    @property
    def instance_id(self) -> str: ...

    @property
    def address(self) -> Address: ...

    @property
    def mode(self) -> TargetMode: ...

    # Multi-model: the TargetModels the instance is known to hold (loads add, the
    # `evicted` list of a load answer and 404s remove).
    models: set[str]
    outstanding: int


@dataclass(frozen=True)
class VariantRoute:
    name: str
    weight: float
    instances: tuple[Target, ...]
    # Set for a multi-model variant: the ModelDataUrl prefix TargetModels live under.
    model_data_prefix: str | None = None
    # A serverless variant: instances come and go with the requests (no instance may be
    # running); the data plane asks its ServerlessCapacity port for one per invocation.
    serverless: bool = False


@dataclass(frozen=True)
class ShadowRoute:
    """A shadow variant: gets a copy of `share` (0..1) of the requests, never answers."""

    name: str
    share: float
    instances: tuple[Target, ...]


@dataclass(frozen=True)
class EndpointRoute:
    name: str
    variants: tuple[VariantRoute, ...]
    # Why invocations cannot be served yet (e.g. "Creating"), for a clear error.
    unavailable_reason: str | None = None
    # Shadow variants; never chosen by `choose_variant`.
    shadows: tuple[ShadowRoute, ...] = ()
    # Data capture of the endpoint config in effect; None when it captures nothing.
    capture: CaptureConfig | None = None

    def variant(self, name: str) -> VariantRoute | None:
        for v in self.variants:
            if v.name == name:
                return v
        return None


@dataclass(frozen=True)
class RoutingTable:
    endpoints: dict[str, EndpointRoute] = field(default_factory=dict)
    version: int = 0

    def with_endpoint(self, route: EndpointRoute) -> RoutingTable:
        endpoints = dict(self.endpoints)
        endpoints[route.name] = route
        return RoutingTable(endpoints, self.version + 1)

    def without_endpoint(self, name: str) -> RoutingTable:
        endpoints = {k: v for k, v in self.endpoints.items() if k != name}
        return RoutingTable(endpoints, self.version + 1)
