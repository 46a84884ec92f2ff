"""In-memory instances for testing control logic without processes.

`FakeProvider` is an `InstanceProvider` whose instances "run" as soon as they start
(or exit at once with status 1, on demand); `FakeClient` answers their /ping from the
provider's state. Together they let a `FleetManager`, the controller's reconcilers and
transform-job pools run their real code in microseconds:

    provider = FakeProvider()
    fleets = FleetManager(settings, provider=provider, client=FakeClient(provider))
"""

from __future__ import annotations

from modelhost.fleet.client import InstanceClient, PingResult
from modelhost.fleet.instance import Instance, LaunchSpec
from modelhost.fleet.provider import DiesWithGateway
from modelhost.resources.status import InstanceStatus


class FakeProvider(DiesWithGateway):
    """Instances as entries in a dict. A start of a model in `failing` (by model name)
    makes an instance that has already exited; `crash(instance)` kills a running one.
    Its instances die with their gateway, as local processes do (nothing to adopt)."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.running: dict[str, Instance] = {}
        self.started: list[Instance] = []
        self.stopped: list[Instance] = []
        self.killed_all = 0
        self._exit_codes: dict[str, int] = {}

    def start(self, spec: LaunchSpec) -> Instance:
        n = len(self.started) + 1
        instance = Instance(
            instance_id=f"i-fake{n:06d}",
            spec=spec,
            port=40000 + n,
            pid=0,
            log_path=spec.log_dir / f"i-fake{n:06d}.log",
        )
        self.started.append(instance)
        if spec.model_name in self.failing:
            self._exit_codes[instance.instance_id] = 1
        else:
            self.running[instance.instance_id] = instance
        return instance

    def crash(self, instance: Instance, code: int = 137) -> None:
        self.running.pop(instance.instance_id, None)
        self._exit_codes[instance.instance_id] = code

    def exit_code(self, instance: Instance) -> int | None:
        if instance.instance_id in self.running:
            return None
        return self._exit_codes.get(instance.instance_id, -1)

    async def stop(self, instance: Instance, grace_s: float) -> None:
        if self.running.pop(instance.instance_id, None) is not None:
            self.stopped.append(instance)
        instance.status = InstanceStatus.STOPPED

    def kill_all(self) -> None:
        self.killed_all += 1
        self.running.clear()

    def serving(self, variant: str | None = None) -> list[Instance]:
        """Running instances (of one variant), in start order."""
        return [
            i for i in self.running.values() if variant is None or i.spec.variant_name == variant
        ]


class FakeClient(InstanceClient):
    """Pings answer 200 for running instances of `provider`, else nothing (status 0)."""

    def __init__(self, provider: FakeProvider) -> None:
        super().__init__()
        self.provider = provider
        self.closed = 0

    async def ping(self, instance: Instance, timeout_s: float) -> PingResult:
        if instance.instance_id in self.provider.running:
            return PingResult(200, b"")
        return PingResult(0, b"")

    async def close(self) -> None:
        self.closed += 1
        await super().close()
