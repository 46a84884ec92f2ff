"""Invocations of multi-model endpoints: TargetModel → instance → load on a miss → invoke.

The gateway plays SageMaker's host agent. For `TargetModel="CA.tar.gz"` on a variant
whose ModelDataUrl is a prefix it:

1. validates the TargetModel (a relative path that stays under the prefix);
2. picks an instance, preferring one that holds the model (`routing.models`);
3. on a miss, fetches `<prefix>/CA.tar.gz` into the local artifact cache (once per
   artifact per gateway: artifacts are immutable per name, as in SageMaker, so a reload
   after an eviction never downloads again) and asks the instance to load it with
   `POST /models`; concurrent first requests for one model on one instance share one load;
4. sends `POST /models/{name}/invoke`; a 404 (the instance unloaded it meanwhile) loads
   it again on that instance (at most `MAX_RELOADS` times).

What each instance holds is learned from these answers (`Instance.models`): loads add,
the `evicted` list of a load answer and 404s remove. A 507 from a server that does not
evict by itself makes the gateway unload that instance's least recently used idle model
and retry; a 507 because the model alone is larger than the instance's budget reaches the
client as ModelError with OriginalStatusCode 507.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelhost.errors import ArtifactError, ModelError, ServiceUnavailable, ValidationError
from modelhost.fleet.http1 import InstanceDisconnected, InstanceUnreachable
from modelhost.routing.models import pick_for_model

if TYPE_CHECKING:
    from modelhost.control.controller import Controller
    from modelhost.fleet.instance import Instance
    from modelhost.routing.table import VariantRoute
    from modelhost.telemetry.model_metrics import ModelMetrics

TARGET_MODEL = b"x-amzn-sagemaker-target-model"
MAX_TARGET_MODEL = 1024
MAX_RELOADS = 2  # 404s from an instance (model gone) before the 404 reaches the caller
_JSON = [(b"content-type", b"application/json")]
_MAX_MESSAGE = 4096


def validate_target_model(value: str) -> str:
    """The TargetModel if it is a relative path under the prefix; else ValidationError."""

    def refuse(rule: str) -> ValidationError:
        shown = value if len(value) <= 80 else value[:80] + "..."
        return ValidationError(
            f"1 validation error detected: Value '{shown}' at 'targetModel' failed to satisfy "
            f"constraint: {rule}"
        )

    if not value:
        raise refuse("Member must have length greater than or equal to 1")
    if len(value) > MAX_TARGET_MODEL:
        raise refuse(f"Member must have length less than or equal to {MAX_TARGET_MODEL}")
    if not value.isprintable() or value[0].isspace():
        raise refuse("Member must satisfy regular expression pattern: \\A\\S[\\p{Print}]*\\z")
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or "://" in value:
        raise refuse("Member must be a path relative to the model's ModelDataUrl prefix")
    if any(p in ("..", ".") for p in parts) or value.endswith("/"):
        raise refuse("Member must name an artifact under the ModelDataUrl prefix (no '.' or '..')")
    return value


def artifact_url(prefix: str, target: str) -> str:
    """`<prefix>/<target>`: SageMaker appends the TargetModel to the prefix."""
    return prefix + target if prefix.endswith("/") else f"{prefix}/{target}"


@dataclass
class Sent:
    """An invocation's answer and the instance that gave it."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes
    instance: Instance
    model_started_s: float


class MultiModelInvoker:
    """Sends invocations of multi-model variants; holds the gateway's loading state."""

    def __init__(
        self,
        controller: Controller,
        metrics: ModelMetrics,
        timeout_s: float,
        log_stream: Callable[[str], str],
    ) -> None:
        self.controller = controller
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.log_stream = log_stream
        # Artifact URL → its unpacked directory in the artifact cache (immutable per name).
        self._dirs: dict[str, Path] = {}
        self._fetches: dict[str, asyncio.Task[Path]] = {}
        self._loads: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Per instance: its models, least recently used first, and requests in flight per
        # model; used to unload for a server that answers 507 instead of evicting.
        self._recency: dict[str, OrderedDict[str, None]] = {}
        self._busy: dict[tuple[str, str], int] = {}
        self._hit_children: dict[tuple[str, str, str], Any] = {}
        self._model_children: dict[tuple[str, str, str], Any] = {}

    async def invoke(
        self,
        endpoint: str,
        variant: VariantRoute,
        target: str,
        fwd: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> Sent:
        assert variant.model_data_prefix is not None
        url = artifact_url(variant.model_data_prefix, target)
        busy = self.controller.settings.model_busy_outstanding
        path = b"/models/" + quote(target, safe="").encode() + b"/invoke"
        headers = [*fwd, (TARGET_MODEL, target.encode())]
        tried: set[str] = set()
        retried_stale = False
        reloads = 0
        forced: Instance | None = None  # after a 404: load on that same instance
        hit: bool | None = None
        while True:
            picked = forced or pick_for_model(
                variant.instances,  # type: ignore[arg-type]
                target,
                self.controller.rand,
                busy,
                frozenset(tried),
            )
            forced = None
            if picked is None:
                raise ServiceUnavailable(
                    f"No instance of variant {variant.name} of endpoint {endpoint} could be "
                    "reached; retry shortly."
                )
            instance: Instance = picked  # type: ignore[assignment]
            labels = (endpoint, variant.name, instance.instance_id)
            instance.outstanding += 1
            try:
                if target not in instance.models:
                    hit = False if hit is None else hit
                    waited = time.perf_counter()
                    await self._ensure_loaded(labels, instance, target, url)
                    self.metrics.loading_wait_us.labels(*labels).observe(
                        (time.perf_counter() - waited) * 1e6
                    )
                elif hit is None:
                    hit = True
                started = time.perf_counter()
                self._use(instance.instance_id, target, 1)
                try:
                    status, out_headers, out = await self.controller.client.http.request(
                        instance.port, b"POST", path, headers, body, self.timeout_s
                    )
                finally:
                    self._use(instance.instance_id, target, -1)
            except InstanceUnreachable:
                self.controller.report_unreachable(endpoint, instance)
                tried.add(instance.instance_id)
                continue
            except InstanceDisconnected as exc:
                if not retried_stale and self.controller.provider.exit_code(instance) is None:
                    retried_stale = True  # a keep-alive connection closed under us
                    continue
                self.controller.report_unreachable(endpoint, instance)
                raise ServiceUnavailable(
                    f"Instance {instance.instance_id} of variant {variant.name} stopped while "
                    f"serving the request ({type(exc).__name__}); retry it."
                ) from exc
            except TimeoutError as exc:
                raise ModelError(
                    'Received server error (0) from primary with message "Your invocation '
                    'timed out while waiting for a response from container primary."',
                    0,
                    f"Invocation timed out after {self.timeout_s:g} s",
                    self.log_stream(endpoint),
                ) from exc
            finally:
                instance.outstanding -= 1
            if status == 404 and reloads < MAX_RELOADS:
                # Unloaded before we heard of it (a concurrent load's eviction whose answer
                # is still on its way, DELETE /models): load it again on this instance,
                # where a just-loaded model is kept for its first request.
                reloads, hit, forced = reloads + 1, False, instance
                instance.models.discard(target)
                self._count(labels, instance)
                continue
            self._bound(labels, target, hit)
            return Sent(status, out_headers, out, instance, started)

    def _use(self, instance_id: str, target: str, delta: int) -> None:
        key = (instance_id, target)
        count = self._busy.get(key, 0) + delta
        if count:
            self._busy[key] = count
        else:
            del self._busy[key]
        if delta > 0:
            order = self._recency.get(instance_id)
            if order is None:
                order = self._recency[instance_id] = OrderedDict()
            order[target] = None
            order.move_to_end(target)

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

    def _bound(self, labels: tuple[str, str, str], target: str, hit: bool | None) -> None:
        # Bound metric children, cached: `labels()` costs a lock and a lookup per call.
        child = self._hit_children.get(labels)
        if child is None:
            child = self._hit_children[labels] = self.metrics.cache_hit.labels(*labels)
        child.observe(1.0 if hit else 0.0)
        key = (labels[0], labels[1], target)
        counter = self._model_children.get(key)
        if counter is None:
            counter = self._model_children[key] = self.metrics.invocations.labels(*key)
        counter.inc()

    async def _ensure_loaded(
        self, labels: tuple[str, str, str], instance: Instance, target: str, url: str
    ) -> None:
        """Load `target` on `instance` once, however many requests wait for it."""
        key = (instance.instance_id, target)
        task = self._loads.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(labels, instance, target, url))
            self._loads[key] = task

            def done(t: asyncio.Task[None], key: tuple[str, str] = key) -> None:
                if self._loads.get(key) is t:
                    del self._loads[key]
                if not t.cancelled():
                    t.exception()  # retrieved: every waiter got it already

            task.add_done_callback(done)
        await asyncio.shield(task)

    async def _load(
        self, labels: tuple[str, str, str], instance: Instance, target: str, url: str
    ) -> None:
        local = await self._local_dir(labels, url)
        request = json.dumps({"model_name": target, "url": str(local)}).encode()
        started = time.perf_counter()
        status, out = await self._post_load(labels, instance, target, request)
        doc = json_object(out)
        # 507 from a server that does not evict by itself: unload our least recently used
        # idle model there and try again, as SageMaker's agent does. Not when the model
        # alone is larger than the whole budget (the built-in container says so).
        while status == 507 and not _alone_too_large(doc):
            victim = self._idle_lru(instance, target)
            if victim is None or not await self._unload(labels, instance, victim):
                break
            started = time.perf_counter()
            status, out = await self._post_load(labels, instance, target, request)
            doc = json_object(out)
        elapsed_us = (time.perf_counter() - started) * 1e6
        if status == 200:
            self.metrics.loading_us.labels(*labels).observe(
                float(doc.get("loadingTimeUs", elapsed_us))
            )
            for gone in doc.get("evicted") or []:
                instance.models.discard(str(gone.get("modelName")))
                self.metrics.unloading_us.labels(*labels).observe(
                    float(gone.get("unloadingTimeUs", 0.0))
                )
        elif status != 409:  # 409: loaded already (by a request we did not see)
            message = str(doc.get("message") or out[:_MAX_MESSAGE].decode("utf-8", "replace"))
            kind = "client" if status < 500 else "server"
            raise ModelError(
                f'Received {kind} error ({status}) from primary with message "{message}" '
                f"while loading TargetModel {target}. See {instance.log_path} for more "
                "information.",
                status,
                message,
                self.log_stream(labels[0]),
            )
        instance.models.add(target)
        self._count(labels, instance)

    async def _post_load(
        self, labels: tuple[str, str, str], instance: Instance, target: str, request: bytes
    ) -> tuple[int, bytes]:
        try:
            status, _headers, out = await self.controller.client.http.request(
                instance.port, b"POST", b"/models", _JSON, request, self.timeout_s
            )
        except TimeoutError as exc:
            raise ModelError(
                f"Loading TargetModel {target} did not finish within {self.timeout_s:g} s.",
                0,
                "load timed out",
                self.log_stream(labels[0]),
            ) from exc
        return status, out

    async def _unload(self, labels: tuple[str, str, str], instance: Instance, name: str) -> bool:
        """`DELETE /models/{name}`; True when the model is gone."""
        started = time.perf_counter()
        path = b"/models/" + quote(name, safe="").encode()
        status, _headers, out = await self.controller.client.http.request(
            instance.port, b"DELETE", path, [], b"", self.timeout_s
        )
        if status not in (200, 404):
            return False
        instance.models.discard(name)
        if status == 200:
            unloading_us = json_object(out).get("unloadingTimeUs")
            if not isinstance(unloading_us, int | float):
                unloading_us = (time.perf_counter() - started) * 1e6
            self.metrics.unloading_us.labels(*labels).observe(float(unloading_us))
        self._count(labels, instance)
        return True

    async def _local_dir(self, labels: tuple[str, str, str], url: str) -> Path:
        """The artifact unpacked on local disk; downloaded at most once per gateway."""
        hit = self._dirs.get(url)
        if hit is not None and hit.is_dir():
            return hit
        task = self._fetches.get(url)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(self.controller.artifacts.fetch, url))
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
        return local

    def _count(self, labels: tuple[str, str, str], instance: Instance) -> None:
        self.metrics.loaded_count.labels(*labels).set(len(instance.models))


def _alone_too_large(doc: dict[str, Any]) -> bool:
    size, budget = doc.get("memoryBytes"), doc.get("budgetBytes")
    return isinstance(size, int) and isinstance(budget, int) and size > budget


def json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
