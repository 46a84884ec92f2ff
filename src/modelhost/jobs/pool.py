"""Warm instances between transform jobs (`transform_keep_alive_s`).

Starting an instance costs seconds (Python, the framework, the model), which dominates a
job of a few seconds. With a keep-alive, a finished job's instances wait that long for the
next job that would start them the same way (same model, environment and instance count)
and are taken over at once; otherwise they are stopped when the time is up. Off (0) by
default, which is SageMaker's behaviour: every job starts its own instances.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from modelhost.fleet.manager import FleetManager
from modelhost.fleet.variant import VariantFleet

log = logging.getLogger("modelhost.jobs")


@dataclass
class WarmFleet:
    """A job's instances and the fleet manager that owns them."""

    fleet: VariantFleet
    manager: FleetManager

    def healthy(self) -> bool:
        instances = self.fleet.instances
        return len(self.fleet.serving()) == self.fleet.desired == len(instances) and all(
            self.manager.exit_code(i) is None for i in instances
        )

    async def close(self) -> None:
        await self.manager.stop_fleet(self.fleet, drain_s=0)


def launch_key(model_spec: dict[str, Any], instances: int) -> str:
    """Jobs whose instances would be started identically share a key."""
    text = json.dumps([model_spec, instances], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class WarmPool:
    """Idle job fleets by launch key, each stopped after `keep_alive_s` unless taken."""

    def __init__(self, keep_alive_s: float) -> None:
        self.keep_alive_s = keep_alive_s
        self._idle: dict[str, tuple[WarmFleet, asyncio.TimerHandle]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def take(self, key: str) -> WarmFleet | None:
        entry = self._idle.pop(key, None)
        if entry is None:
            return None
        warm, timer = entry
        timer.cancel()
        if warm.healthy():
            return warm
        self._close(warm)
        return None

    def give(self, key: str, warm: WarmFleet) -> bool:
        """Keep `warm` for the next job; False if the caller must stop it instead."""
        if self.keep_alive_s <= 0 or key in self._idle or not warm.healthy():
            return False
        timer = asyncio.get_running_loop().call_later(self.keep_alive_s, self._expire, key)
        self._idle[key] = (warm, timer)
        return True

    def _expire(self, key: str) -> None:
        entry = self._idle.pop(key, None)
        if entry is not None:
            log.info("stopping transform instances idle for %.0f s", self.keep_alive_s)
            self._close(entry[0])

    def _close(self, warm: WarmFleet) -> None:
        task = asyncio.ensure_future(warm.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for warm, timer in self._idle.values():
            timer.cancel()
            self._close(warm)
        self._idle.clear()
        await asyncio.gather(*self._closing, return_exceptions=True)
