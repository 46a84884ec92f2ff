"""Fakes for testing the invocation data plane (fleet/dataplane) without processes.

`FakeTransport` answers requests by address from scripted handlers, `FakeHealth` records
what the data plane reports, `FakeRoutes` holds a RoutingTable, and `instance()` builds
an `Instance` at a fake address. A handler gets (method, path, headers, body) and
returns (status, headers, body) or raises what the real client raises
(InstanceUnreachable, InstanceDisconnected, TimeoutError).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelhost.fleet.http1 import InstanceUnreachable
from modelhost.fleet.instance import Instance, LaunchSpec
from modelhost.resources.status import InstanceStatus
from modelhost.routing.table import Address, RoutingTable

Reply = tuple[int, dict[bytes, bytes], bytes]
Handler = Callable[[bytes, bytes, list[tuple[bytes, bytes]], bytes], Awaitable[Reply]]


def instance(
    instance_id: str,
    port: int,
    *,
    host: str = "10.0.0.1",
    variant: str = "AllTraffic",
    model_data_prefix: str | None = None,
) -> Instance:
    """An in-service Instance at (host, port) that no process backs."""
    spec = LaunchSpec(
        endpoint_name="ep",
        variant_name=variant,
        model_name="m",
        argv=[],
        env={},
        model_dir=Path("/nonexistent"),
        log_dir=Path("/nonexistent"),
        model_data_prefix=model_data_prefix,
    )
    return Instance(
        instance_id=instance_id,
        spec=spec,
        port=port,
        pid=0,
        log_path=Path(f"/logs/{instance_id}.log"),
        status=InstanceStatus.IN_SERVICE,
        host=host,
    )


def answer(status: int = 200, body: bytes = b"ok", content_type: bytes = b"text/plain") -> Handler:
    """A handler that always answers the same."""

    async def handler(
        _method: bytes, _path: bytes, _headers: list[tuple[bytes, bytes]], _body: bytes
    ) -> Reply:
        return status, {b"content-type": content_type}, body

    return handler


@dataclass
class Call:
    address: Address
    method: bytes
    path: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    timeout_s: float


@dataclass
class FakeTransport:
    """Routes each request to the handler of its address; no handler: unreachable.
    A list of handlers is used one per request, the last one repeating."""

    handlers: dict[Address, Handler | list[Handler]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    async def request(
        self,
        address: Address,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout_s: float,
    ) -> Reply:
        self.calls.append(Call(address, method, path, headers, body, timeout_s))
        handler = self.handlers.get(address)
        if isinstance(handler, list):
            handler = handler.pop(0) if len(handler) > 1 else handler[0]
        if handler is None:
            raise InstanceUnreachable(f"cannot connect to {address}")
        return await handler(method, path, headers, body)


@dataclass
class FakeHealth:
    """Records reported instances; `dead` instances are not alive."""

    reported: list[tuple[str, str]] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)

    def report_unreachable(self, endpoint: str, instance: Instance) -> None:
        self.reported.append((endpoint, instance.instance_id))

    def is_alive(self, instance: Instance) -> bool:
        return instance.instance_id not in self.dead


@dataclass
class FakeRoutes:
    """A routing-snapshot source whose table a test swaps at will."""

    table: RoutingTable = field(default_factory=RoutingTable)
