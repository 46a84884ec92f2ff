"""LEGACY (issue 19): the gateway as the multi-model host agent, until instances fetch
artifacts themselves. Delete this module when `multimodel.GATEWAY_FETCHES_ARTIFACTS`
is flipped to False.

While it is in use, the gateway fetches `<prefix>/<TargetModel>` into its own artifact
cache (once per artifact per gateway: artifacts are immutable per name, as in SageMaker,
so a reload after an eviction never downloads again) and posts the local directory; and
for a server that answers 507 instead of evicting (a user's own), it unloads that
instance's least recently used idle model and retries, as SageMaker's agent does.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelhost.errors import ArtifactError, ValidationError
from modelhost.fleet.dataplane.core import Invoker, json_object
from modelhost.fleet.instance import Instance

if TYPE_CHECKING:
    from modelhost.telemetry.model_metrics import ModelMetrics

Labels = tuple[str, str, str]


def alone_too_large(doc: dict[str, Any]) -> bool:
    """The 507 says the model alone is larger than the whole budget (no unload helps)."""
    size, budget = doc.get("memoryBytes"), doc.get("budgetBytes")
    return isinstance(size, int) and isinstance(budget, int) and size > budget


class HostAgent:
    """Fetches artifacts for instances and unloads for servers that do not evict."""

    def __init__(self, core: Invoker, metrics: ModelMetrics, fetch: Callable[[str], Path]) -> None:
        self.core = core
        self.metrics = metrics
        self.fetch = fetch
        # Artifact URL → its unpacked directory in the artifact cache (immutable per name).
        self._dirs: dict[str, Path] = {}
        self._fetches: dict[str, asyncio.Task[Path]] = {}
        # Per instance: its models, least recently used first, and requests in flight.
        self._recency: dict[str, OrderedDict[str, None]] = {}
        self._busy: dict[tuple[str, str], int] = {}

    async def local_dir(self, labels: Labels, url: str) -> str:
        """The artifact unpacked on local disk; downloaded at most once per gateway."""
        hit = self._dirs.get(url)
        if hit is not None and hit.is_dir():
            return str(hit)
        task = self._fetches.get(url)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(self.fetch, url))
            self._fetches[url] = task

            def done(t: asyncio.Task[Path]) -> None:
                self._fetches.pop(url, None)
                if not t.cancelled():
                    t.exception()  # retrieved: every waiter got it already

            task.add_done_callback(done)
        started = time.perf_counter()
        try:
            local = await asyncio.shield(task)
        except ArtifactError as exc:
            # SageMaker answers a TargetModel it cannot download with ValidationError.
            raise ValidationError(
                f"Failed to download model data for TargetModel at {url}: {exc.message}"
            ) from exc
        self.metrics.downloading_us.labels(*labels).observe((time.perf_counter() - started) * 1e6)
        self._dirs[url] = local
        return str(local)

    def use(self, instance_id: str, target: str, delta: int) -> None:
        """Count a request for `target` on an instance in (+1) or out (-1)."""
        key = (instance_id, target)
        count = self._busy.get(key, 0) + delta
        if count:
            self._busy[key] = count
        else:
            del self._busy[key]
        if delta > 0:
            order = self._recency.setdefault(instance_id, OrderedDict())
            order[target] = None
            order.move_to_end(target)

    async def make_room(
        self,
        labels: Labels,
        instance: Instance,
        target: str,
        out: bytes,
        retry: Callable[[], Awaitable[tuple[int, bytes]]],
    ) -> tuple[float, int, bytes]:
        """After a 507 answering `out`: unload idle models, least recently used first,
        retrying the load after each; (start of the last load attempt, status, body)."""
        started, status = time.perf_counter(), 507
        while status == 507:
            victim = self._idle_lru(instance, target)
            if victim is None or not await self._unload(labels, instance, victim):
                break
            started = time.perf_counter()
            status, out = await retry()
            if alone_too_large(json_object(out)):
                break
        return started, status, out

    def _idle_lru(self, instance: Instance, keep: str) -> str | None:
        """The least recently used model of `instance` with no request in flight."""
        order = self._recency.get(instance.instance_id, OrderedDict())
        for name in [n for n in instance.models if n not in order]:
            order[name] = None  # loaded, never invoked yet: newest
        for name in list(order):
            if name not in instance.models:
                del order[name]
            elif name != keep and not self._busy.get((instance.instance_id, name)):
                return name
        return None

    async def _unload(self, labels: Labels, instance: Instance, name: str) -> bool:
        """`DELETE /models/{name}`; True when the model is gone."""
        started = time.perf_counter()
        path = b"/models/" + quote(name, safe="").encode()
        status, _headers, out = await self.core.http.request(
            instance.address, b"DELETE", path, [], b"", self.core.timeout_s
        )
        if status not in (200, 404):
            return False
        instance.models.discard(name)
        if status == 200:
            unloading_us = json_object(out).get("unloadingTimeUs")
            if not isinstance(unloading_us, int | float):
                unloading_us = (time.perf_counter() - started) * 1e6
            self.metrics.unloading_us.labels(*labels).observe(float(unloading_us))
        self.metrics.loaded_count.labels(*labels).set(len(instance.models))
        return True
