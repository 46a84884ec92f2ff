"""Multi-container instances: one instance = one process per container, kept together.

A model with several `Containers` (an inference pipeline, or a multi-container endpoint
with direct invocation) runs all of them on every instance, as SageMaker does. Here an
instance is a `ContainerGroup`: one child process per container, each with its own
runtime, environment, port (`SAGEMAKER_BIND_TO_PORT`) and log. The group is started,
health-checked, replaced and stopped as one unit: `GroupProvider` and `GroupClient` have
the interfaces `VariantFleet` already uses (start / exit_code / stop and ping), so the
fleet logic (startup deadline, replacement with backoff, draining) is the same code for
single- and multi-container variants.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelhost.fleet.client import InstanceClient, PingResult
from modelhost.fleet.instance import Instance, LaunchSpec
from modelhost.fleet.launch import LaunchError, build_launch_spec
from modelhost.fleet.local import LocalProcessProvider
from modelhost.fleet.provider import InstanceProvider
from modelhost.resources.containers import ExecutionMode, container_hostnames, execution_mode
from modelhost.routing.table import TargetMode
from modelhost.settings import Settings


@dataclass
class GroupLaunchSpec(LaunchSpec):
    """A LaunchSpec whose instance is several processes: `containers` in model order."""

    mode: ExecutionMode = ExecutionMode.SERIAL
    containers: tuple[tuple[str, LaunchSpec], ...] = ()

    @property
    def hostnames(self) -> tuple[str, ...]:
        return tuple(host for host, _ in self.containers)


@dataclass(eq=False)
class ContainerGroup(Instance):
    """One instance of a multi-container variant. Routing sees it as one instance
    (`outstanding` counts invocations of the group); `members` are the processes, in
    the model's container order."""

    members: tuple[Instance, ...] = ()
    hostnames: tuple[str, ...] = ()
    _by_host: dict[str, Instance] = field(default_factory=dict, repr=False)

    def member(self, hostname: str) -> Instance | None:
        return self._by_host.get(hostname)

    @property
    def mode(self) -> TargetMode:
        return TargetMode.MULTI_CONTAINER


def build_group_launch_spec(
    *,
    settings: Settings,
    endpoint_name: str,
    variant_name: str,
    model_name: str,
    model_spec: dict[str, Any],
    fetch: Callable[[str], Path],
    fetch_source: Callable[[dict[str, Any]], Path],
    node_fetch: bool = False,
) -> GroupLaunchSpec:
    """One LaunchSpec per container (each resolved like a PrimaryContainer), logs under
    `<logs>/<endpoint>/<variant>/<hostname>/`. Blocking: call off the event loop."""
    containers = model_spec.get("Containers") or []
    hostnames = container_hostnames(containers)
    specs: list[tuple[str, LaunchSpec]] = []
    for host, container in zip(hostnames, containers, strict=True):
        try:
            spec = build_launch_spec(
                settings=settings,
                endpoint_name=endpoint_name,
                variant_name=variant_name,
                model_name=model_name,
                model_spec={"PrimaryContainer": container},
                fetch=fetch,
                fetch_source=fetch_source,
                node_fetch=node_fetch,
            )
        except LaunchError as exc:
            raise LaunchError(f"Container {host}: {exc}") from exc
        # Spawned, not forked from a zygote: a group's containers start together, and
        # often with different runtimes.
        member = dataclasses.replace(spec, log_dir=spec.log_dir / host, forkable=False)
        specs.append((host, member))
    first = specs[0][1]
    return GroupLaunchSpec(
        endpoint_name=endpoint_name,
        variant_name=variant_name,
        model_name=model_name,
        argv=first.argv,
        env={},
        model_dir=first.model_dir,
        log_dir=settings.logs_dir / endpoint_name / variant_name,
        # A user's server may answer errors while it warms up; so may the group.
        builtin=all(s.builtin for _, s in specs),
        mode=execution_mode(model_spec),
        containers=tuple(specs),
    )


class GroupProvider(LocalProcessProvider):
    """Starts and stops whole container groups through the gateway's process provider
    (`inner`), so its last-resort cleanup (`kill_all`) covers every member too."""

    def __init__(self, inner: InstanceProvider) -> None:
        super().__init__()
        self.inner = inner
        self._cleanup: set[asyncio.Future[None]] = set()

    def start(self, spec: LaunchSpec) -> Instance:
        assert isinstance(spec, GroupLaunchSpec)
        members: list[Instance] = []
        try:
            for _, member_spec in spec.containers:
                members.append(self.inner.start(member_spec))
        except BaseException:
            # Called on the event loop (by VariantFleet): stop what did start, then fail.
            for started in members:
                task = asyncio.ensure_future(self.inner.stop(started, 0.0))
                self._cleanup.add(task)
                task.add_done_callback(self._cleanup.discard)
            raise
        first = members[0]
        group = ContainerGroup(
            instance_id=first.instance_id,
            spec=spec,
            port=first.port,
            host=first.host,
            unix_path=first.unix_path,
            pid=first.pid,
            log_path=first.log_path,
            members=tuple(members),
            hostnames=spec.hostnames,
            _by_host=dict(zip(spec.hostnames, members, strict=True)),
        )
        return group

    def exit_code(self, instance: Instance) -> int | None:
        """The exit status of the first member that has exited (None while all run).
        The group's `log_path` then points at that member's log, so the fleet's failure
        reason quotes the container that died."""
        assert isinstance(instance, ContainerGroup)
        for member in instance.members:
            code = self.inner.exit_code(member)
            if code is not None:
                instance.log_path = member.log_path
                return code
        # A provider may learn a member's address after the start (Ray): the group's is
        # its first member's.
        first = instance.members[0]
        instance.host, instance.port, instance.pid = first.host, first.port, first.pid
        return None

    async def stop(self, instance: Instance, grace_s: float) -> None:
        assert isinstance(instance, ContainerGroup)
        await asyncio.gather(*(self.inner.stop(m, grace_s) for m in instance.members))
        instance.status = instance.members[0].status

    def watch(self, instance: Instance, on_exit: Callable[[], None]) -> None:
        """`on_exit` as soon as any member's process ends (the group is replaced whole)."""
        assert isinstance(instance, ContainerGroup)
        watch = getattr(self.inner, "watch", None)
        if watch is None:
            return
        for member in instance.members:
            watch(member, on_exit)

    def kill_all(self) -> None:
        self.inner.kill_all()


class GroupClient(InstanceClient):
    """Pings every member of a group; the group is healthy only when all answer 200.
    The first unhealthy member's answer stands for the group, its body prefixed with
    the container's host name so a failed start says which container failed."""

    def __init__(self, inner: InstanceClient) -> None:
        super().__init__()
        self.inner = inner
        self.http = inner.http

    async def ping(self, instance: Instance, timeout_s: float) -> PingResult:
        assert isinstance(instance, ContainerGroup)
        results = await asyncio.gather(*(self.inner.ping(m, timeout_s) for m in instance.members))
        for host, member, result in zip(instance.hostnames, instance.members, results, strict=True):
            if result.status != 200:
                instance.log_path = member.log_path
                return PingResult(result.status, _with_host(host, result.body))
        return PingResult(200, b"")

    async def close(self) -> None:
        # The inner client belongs to the controller, which closes it.
        return None


def _with_host(host: str, body: bytes) -> bytes:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("reason"), str):
        doc["reason"] = f"container {host}: {doc['reason']}"
        return json.dumps(doc).encode()
    text = body.decode("utf-8", "replace").strip() or "no reason given"
    return f"container {host}: {text}".encode()
