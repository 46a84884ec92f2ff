"""The instances of one production variant: start, health-check, replace, stop."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from modelhost.fleet.client import InstanceClient
from modelhost.fleet.instance import Instance, LaunchSpec
from modelhost.fleet.local import tail
from modelhost.fleet.provider import InstanceProvider
from modelhost.resources.status import InstanceStatus

log = logging.getLogger("modelhost.fleet")


class StartupError(Exception):
    """An instance did not become healthy; the message is an actionable FailureReason."""


class VariantFleet:
    """Keeps `desired` healthy instances of one variant running.

    `start()` brings up the initial instances and fails fast with the instance's own
    reason (its /ping body or the tail of its log). Afterwards `check()` is called
    periodically: dead or repeatedly unresponsive instances leave the serving set at
    once and a replacement is started in the background. `on_change` is called whenever
    the serving set changes so the routing table can be republished.
    """

    def __init__(
        self,
        spec: LaunchSpec,
        desired: int,
        provider: InstanceProvider,
        client: InstanceClient,
        *,
        startup_timeout_s: float,
        ping_timeout_s: float,
        unhealthy_threshold: int,
        shutdown_grace_s: float,
        on_change: Callable[[], None],
        on_setup: Callable[[Instance, float], None] = lambda _i, _s: None,
    ) -> None:
        self.spec = spec
        self.desired = desired
        self.instances: list[Instance] = []
        self._provider = provider
        self._client = client
        self._startup_timeout_s = startup_timeout_s
        self._ping_timeout_s = ping_timeout_s
        self._unhealthy_threshold = unhealthy_threshold
        self._shutdown_grace_s = shutdown_grace_s
        self._on_change = on_change
        # Every instance start: seconds from launch to its first /ping 200 (ModelSetupTime).
        self._on_setup = on_setup
        self._replacing: set[asyncio.Task[None]] = set()
        self._stopped = False
        # Replacements that keep failing (e.g. the artifact vanished) back off
        # exponentially instead of starting a process every health-check period.
        self._failed_replacements = 0
        self._next_start_s = 0.0

    def _launch(self) -> Instance:
        """Start one instance; the provider, where it can, reports its exit at once."""
        inst = self._provider.start(self.spec)
        watch = getattr(self._provider, "watch", None)
        if watch is not None:
            watch(inst, lambda: self._exited(inst))
        return inst

    def _exited(self, inst: Instance) -> None:
        """A serving instance's process ended (a kill, a crash): out of routing and
        replaced now, not at the next health check. One still starting fails its start
        on its own (`_wait_ready` sees the exit)."""
        if self._stopped or inst not in self.instances:
            return
        if inst.status not in (InstanceStatus.IN_SERVICE, InstanceStatus.UNHEALTHY):
            return
        log.warning(
            "instance %s of %s/%s exited; replacing it",
            inst.instance_id,
            self.spec.endpoint_name,
            self.spec.variant_name,
        )
        self.instances.remove(inst)
        self._track(asyncio.ensure_future(self._provider.stop(inst, grace_s=1.0)))
        self._on_change()
        self._top_up()

    def serving(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.status == InstanceStatus.IN_SERVICE)

    async def start(self) -> None:
        """Adopt what an earlier leader left serving (detached instances), start the
        rest, and wait until every instance serves."""
        adopted = await self._adopt()
        started = [self._launch() for _ in range(self.desired - len(adopted))]
        self.instances.extend(started)
        results = await asyncio.gather(
            *(self._wait_ready(i) for i in started), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.stop(drain_s=0)
            raise StartupError(str(errors[0])) from errors[0]

    async def _adopt(self) -> list[Instance]:
        """The provider's running instances of this variant that a gateway before this
        one started (Ray's detached actors, after a leader died): the ones that answer
        /ping serve at once; the others are stopped (and started anew)."""
        found = await self._provider.adopt(self.spec, self.desired)
        if not found:
            return []
        results = await asyncio.gather(*(self._client.ping(i, self._ping_timeout_s) for i in found))
        adopted = []
        for inst, result in zip(found, results, strict=True):
            if result.status == 200:
                inst.status = InstanceStatus.IN_SERVICE
                adopted.append(inst)
            else:
                await self._provider.stop(inst, grace_s=1.0)
        self.instances.extend(adopted)
        log.info(
            "%s/%s: adopted %d running instance(s)",
            self.spec.endpoint_name,
            self.spec.variant_name,
            len(adopted),
        )
        return adopted

    async def scale_to(self, count: int, drain_s: float) -> None:
        """Change the instance count live: new instances take traffic only once they answer
        /ping; removed ones leave routing first, finish their in-flight requests, then stop.
        Raises StartupError (and keeps the old count) if new instances fail."""
        current = [i for i in self.instances if i.status == InstanceStatus.IN_SERVICE]
        if count > len(current):
            added = [self._launch() for _ in range(count - len(current))]
            self.instances.extend(added)
            results = await asyncio.gather(
                *(self._wait_ready(i) for i in added), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                for inst in added:
                    self.instances.remove(inst)
                await asyncio.gather(*(self._provider.stop(i, 1.0) for i in added))
                raise StartupError(str(errors[0])) from errors[0]
            self.desired = count
            self._on_change()
            return
        # Retire the least busy instances: they drain soonest.
        retiring = sorted(current, key=lambda i: i.outstanding)[: len(current) - count]
        self.desired = count
        for inst in retiring:
            inst.status = InstanceStatus.DRAINING
        self._on_change()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        while any(i.outstanding for i in retiring) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for inst in retiring:
            self.instances.remove(inst)
        await asyncio.gather(*(self._provider.stop(i, self._shutdown_grace_s) for i in retiring))

    async def add_one(self) -> Instance:
        """Start one more instance and return it once it serves (serverless scale-out);
        StartupError (and it is gone again) if it cannot."""
        inst = self._launch()
        self.instances.append(inst)
        try:
            await self._wait_ready(inst)
        except BaseException:
            if inst in self.instances:
                self.instances.remove(inst)
            await self._provider.stop(inst, 1.0)
            raise
        if self._stopped:
            await self._provider.stop(inst, grace_s=self._shutdown_grace_s)
            raise StartupError("the variant is stopping")
        self._on_change()
        return inst

    async def retire(self, instances: list[Instance]) -> None:
        """Take idle `instances` out of routing and stop them (serverless scale-in)."""
        gone = [i for i in instances if i in self.instances]
        for inst in gone:
            self.instances.remove(inst)
        if gone:
            self._on_change()
        await asyncio.gather(*(self._provider.stop(i, self._shutdown_grace_s) for i in gone))

    async def _wait_ready(self, instance: Instance) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._startup_timeout_s
        launched = time.perf_counter()
        # Fine-grained at first: a forked (zygote) instance answers within ~0.1 s.
        delay = 0.005
        while True:
            code = self._provider.exit_code(instance)
            if code is not None:
                instance.status = InstanceStatus.FAILED
                raise StartupError(
                    f"Instance {instance.instance_id} exited with status {code} before it "
                    f"answered /ping. Last log lines ({instance.log_path}): "
                    f"{tail(instance.log_path, 600)}"
                )
            result = await self._client.ping(instance, self._ping_timeout_s)
            if result.status == 200:
                instance.status = InstanceStatus.IN_SERVICE
                self._on_setup(instance, time.perf_counter() - launched)
                return
            if result.status >= 500 and result.status != 503 and self.spec.builtin:
                instance.status = InstanceStatus.FAILED
                raise StartupError(_ping_reason(result.body, instance))
            if loop.time() > deadline:
                instance.status = InstanceStatus.FAILED
                raise StartupError(
                    f"Instance {instance.instance_id} did not pass the /ping health check "
                    f"within {self._startup_timeout_s:.0f} s. See {instance.log_path}."
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.3, 0.5)

    def mark_unreachable(self, instance: Instance) -> None:
        """Called from the request path when a connection to the instance is refused."""
        if instance.status == InstanceStatus.IN_SERVICE:
            instance.status = InstanceStatus.UNHEALTHY
            self._on_change()

    async def check(self) -> None:
        """One health-check round; replaces dead instances."""
        if self._stopped:
            return
        changed = False
        for inst in list(self.instances):
            if inst.status not in (InstanceStatus.IN_SERVICE, InstanceStatus.UNHEALTHY):
                continue
            dead = self._provider.exit_code(inst) is not None
            if not dead:
                result = await self._client.ping(inst, self._ping_timeout_s)
                if inst not in self.instances:
                    continue  # it exited (and was replaced) during the ping
                if result.status == 200:
                    inst.failed_pings = 0
                    if inst.status == InstanceStatus.UNHEALTHY:
                        inst.status = InstanceStatus.IN_SERVICE
                        changed = True
                    continue
                inst.failed_pings += 1
                dead = inst.failed_pings >= self._unhealthy_threshold
            if dead:
                log.warning(
                    "instance %s of %s/%s is unhealthy; replacing it",
                    inst.instance_id,
                    self.spec.endpoint_name,
                    self.spec.variant_name,
                )
                self.instances.remove(inst)
                changed = True
                self._track(asyncio.ensure_future(self._provider.stop(inst, grace_s=1.0)))
        if changed:
            self._on_change()
        self._top_up()

    def _top_up(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_start_s:
            return
        live = [
            i
            for i in self.instances
            if i.status
            in (InstanceStatus.STARTING, InstanceStatus.IN_SERVICE, InstanceStatus.UNHEALTHY)
        ]
        for _ in range(self.desired - len(live)):
            inst = self._launch()
            self.instances.append(inst)
            self._track(asyncio.ensure_future(self._replace(inst)))

    def _track(self, task: asyncio.Task[None]) -> None:
        # Keep a reference so the task is not garbage-collected mid-flight.
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _replace(self, inst: Instance) -> None:
        try:
            await self._wait_ready(inst)
        except StartupError as exc:
            self._failed_replacements += 1
            backoff_s = min(2.0**self._failed_replacements, 60.0)
            self._next_start_s = asyncio.get_running_loop().time() + backoff_s
            log.error("replacement instance failed (next try in %.0f s): %s", backoff_s, exc)
            if inst in self.instances:
                self.instances.remove(inst)
            await self._provider.stop(inst, grace_s=1.0)
            return
        self._failed_replacements = 0
        if self._stopped:
            await self._provider.stop(inst, grace_s=self._shutdown_grace_s)
            return
        self._on_change()

    async def stop(self, drain_s: float) -> None:
        """Wait (up to drain_s) for in-flight requests, then stop every instance."""
        instances = await self._halt(drain_s)
        await asyncio.gather(*(self._provider.stop(i, self._shutdown_grace_s) for i in instances))

    async def release(self, drain_s: float) -> None:
        """As `stop`, but instances that outlive their gateway keep serving: this
        gateway stops leading, and the next leader adopts them."""
        instances = await self._halt(drain_s)
        grace_s = self._shutdown_grace_s
        await asyncio.gather(*(self._provider.release(i, grace_s) for i in instances))

    async def _halt(self, drain_s: float) -> list[Instance]:
        """No more health checks or replacements; wait (up to drain_s) for in-flight
        requests; the instances, handed over to the caller."""
        self._stopped = True
        for task in list(self._replacing):
            task.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s
        while any(i.outstanding for i in self.instances) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        instances, self.instances = self.instances, []
        return instances


def _ping_reason(body: bytes, instance: Instance) -> str:
    try:
        reason = json.loads(body).get("reason")
    except (ValueError, AttributeError):
        reason = None
    if not reason:
        reason = body.decode("utf-8", "replace").strip() or "no reason given"
    return f"{reason} (instance log: {instance.log_path})"
