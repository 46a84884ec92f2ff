"""Multi-model variants: TargetModel → instance → load on a miss → invoke.

For `TargetModel="CA.tar.gz"` on a variant whose ModelDataUrl is a prefix:

1. pick an instance, preferring one that holds the model (`routing.models`);
2. on a miss, ask the instance to load it with `POST /models` (concurrent first requests
   for one model on one instance share one load); the instance reads the artifact and
   evicts under its own memory budget (it owns the one LRU);
3. send `POST /models/{name}/invoke`; a 404 (the instance unloaded it meanwhile) loads
   it again on that instance (at most `MAX_RELOADS` times), with a load of the request's
   own that announces it (`expect_use`), so the instance keeps the model for it: under
   eviction thrash a shared load's model could otherwise be used by the other waiters
   and evicted again before this request's invocation arrives.

What each instance holds is routing knowledge learned from these answers
(`Instance.models`): loads add, the `evicted` list of a load answer and 404s remove.
Timings measured in the instance (loading, downloading, unloading) come back in the
load answer and feed the gateway's metrics.
"""

from __future__ import annotations

import asyncio
import json
import time
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from modelhost.errors import ModelError, ValidationError
from modelhost.fleet.dataplane.core import (
    MAX_ORIGINAL_MESSAGE,
    Headers,
    Invoker,
    Retry,
    Sent,
    json_object,
)
from modelhost.fleet.http1 import InstanceDisconnected, InstanceUnreachable
from modelhost.fleet.instance import Instance
from modelhost.routing.models import pick_for_model
from modelhost.routing.table import Target, VariantRoute

if TYPE_CHECKING:
    from modelhost.telemetry.model_metrics import ModelMetrics

__all__ = ["MultiModelInvoker", "artifact_url", "json_object"]

TARGET_MODEL = b"x-amzn-sagemaker-target-model"
MAX_ADDRESSES = 4096  # (prefix, TargetModel) pairs whose URL and path are kept
MAX_RELOADS = 2  # 404s from an instance (model gone) before the 404 reaches the caller
_JSON = [(b"content-type", b"application/json")]
POST = b"POST"

Labels = tuple[str, str, str]  # endpoint, variant, instance id


def artifact_url(prefix: str, target: str) -> str:
    """`<prefix>/<target>`: SageMaker appends the TargetModel to the prefix."""
    return prefix + target if prefix.endswith("/") else f"{prefix}/{target}"


class MultiModelInvoker:
    """Sends invocations of multi-model variants; shares loads in flight."""

    def __init__(
        self,
        core: Invoker,
        metrics: ModelMetrics,
        busy_outstanding: int,
    ) -> None:
        self.core = core
        self.metrics = metrics
        self.busy_outstanding = busy_outstanding
        self._loads: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._hit_children: dict[Labels, Any] = {}
        self._model_children: dict[Labels, Any] = {}
        # (prefix, target) -> (artifact URL, instance path, header): built once per name.
        self._addresses: dict[tuple[str, str], tuple[str, bytes, tuple[bytes, bytes]]] = {}

    async def invoke(
        self, endpoint: str, variant: VariantRoute, target: str, forward: Headers, body: bytes
    ) -> Sent:
        assert variant.model_data_prefix is not None
        url, path, header = self._address(variant.model_data_prefix, target)
        headers = [*forward, header]
        core = self.core
        first = pick_for_model(variant.instances, target, core.rand, self.busy_outstanding)
        if first is None or target not in first.models:
            return await self._invoke(endpoint, variant, target, url, path, headers, body)
        # A hit (the common case), sent inline as SingleModelInvoker sends: no pick/attempt
        # closures and no coroutine per attempt. Anything else goes the general way.
        instance = cast(Instance, first)
        instance.outstanding += 1
        started = perf_counter()
        try:
            status, out_headers, out = await core.http.request(
                instance.address, POST, path, headers, body, core.timeout_s
            )
        except (InstanceUnreachable, InstanceDisconnected, TimeoutError) as exc:
            tried, retry = {instance.instance_id}, Retry()
            core.recover(endpoint, variant.name, instance, exc, tried, retry)
            return await self._invoke(
                endpoint, variant, target, url, path, headers, body, tried=tried, retry=retry
            )
        finally:
            instance.outstanding -= 1
        labels = (endpoint, variant.name, instance.instance_id)
        if status == 404:  # unloaded before we heard of it: reload it there (`_invoke`)
            instance.models.discard(target)
            self._count(labels, instance)
            return await self._invoke(
                endpoint, variant, target, url, path, headers, body, reload_on=instance
            )
        self._bound(labels, target, True)
        return Sent(status, out_headers, out, instance, (perf_counter() - started) * 1e6)

    async def _invoke(
        self,
        endpoint: str,
        variant: VariantRoute,
        target: str,
        url: str,
        path: bytes,
        headers: Headers,
        body: bytes,
        tried: set[str] | None = None,
        retry: Retry | None = None,
        reload_on: Instance | None = None,
    ) -> Sent:
        """The general way: loads on a miss, reloads after a 404, retries elsewhere.
        `reload_on`: the instance that answered 404 to our first try (reloaded at once,
        with `expect_use`)."""
        instances, rand, busy = variant.instances, self.core.rand, self.busy_outstanding
        # Across attempts: was the first try a hit?
        hit: list[bool | None] = [None if reload_on is None else False]

        def pick(tried: frozenset[str]) -> Target | None:
            if reload_on is not None and reload_on.instance_id not in tried:
                return reload_on
            return pick_for_model(instances, target, rand, busy, tried)

        async def attempt(instance: Instance) -> Sent:
            labels = (endpoint, variant.name, instance.instance_id)
            for reloads in range(1 if instance is reload_on else 0, MAX_RELOADS + 1):
                if target not in instance.models or reloads:
                    hit[0] = False if hit[0] is None else hit[0]
                    waited = time.perf_counter()
                    if reloads:
                        # Our own load, announcing this request: the instance keeps the
                        # model until we invoke it (a shared load's model may be used
                        # and evicted by the others before our invocation arrives).
                        await self._load(labels, instance, target, url, expect_use=True)
                    else:
                        await self._ensure_loaded(labels, instance, target, url)
                    self.metrics.loading_wait_us.labels(*labels).observe(
                        (time.perf_counter() - waited) * 1e6
                    )
                elif hit[0] is None:
                    hit[0] = True
                sent = await self._send(instance, target, path, headers, body)
                if sent.status != 404 or reloads == MAX_RELOADS:
                    break
                # Unloaded before we heard of it (a concurrent load's eviction whose answer
                # is still on its way, DELETE /models): load it again on this instance,
                # where a just-loaded model is kept for its first request.
                hit[0] = False
                instance.models.discard(target)
                self._count(labels, instance)
            self._bound(labels, target, hit[0])
            return sent

        return await self.core.run(endpoint, variant.name, pick, attempt, tried, retry)

    def _address(self, prefix: str, target: str) -> tuple[str, bytes, tuple[bytes, bytes]]:
        key = (prefix, target)
        address = self._addresses.get(key)
        if address is None:
            if len(self._addresses) >= MAX_ADDRESSES:
                self._addresses.clear()
            address = self._addresses[key] = (
                artifact_url(prefix, target),
                b"/models/" + quote(target, safe="").encode() + b"/invoke",
                (TARGET_MODEL, target.encode()),
            )
        return address

    async def _send(
        self, instance: Instance, target: str, path: bytes, headers: Headers, body: bytes
    ) -> Sent:
        started = time.perf_counter()
        status, out_headers, out = await self.core.post(instance, path, headers, body)
        return Sent(status, out_headers, out, instance, (time.perf_counter() - started) * 1e6)

    def _bound(self, labels: Labels, target: str, hit: bool | None) -> None:
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
        self, labels: Labels, instance: Instance, target: str, url: str
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
        self, labels: Labels, instance: Instance, target: str, url: str, expect_use: bool = False
    ) -> None:
        # The instance (or a user's server's host agent) fetches the location itself.
        doc: dict[str, Any] = {"model_name": target, "url": url}
        if expect_use:
            doc["expect_use"] = True
        request = json.dumps(doc).encode()
        started = time.perf_counter()
        status, out = await self._post_load(labels, instance, target, request)
        doc = json_object(out)
        if status == 200:
            self._observe_load(labels, instance, doc, (time.perf_counter() - started) * 1e6)
        elif doc.get("artifactError") is True:
            # The location could not be fetched: the caller's TargetModel, not the model.
            raise ValidationError(str(doc.get("message")))
        elif status != 409:  # 409: loaded already (by a request we did not see)
            message = str(
                doc.get("message") or out[:MAX_ORIGINAL_MESSAGE].decode("utf-8", "replace")
            )
            kind = "client" if status < 500 else "server"
            raise ModelError(
                f'Received {kind} error ({status}) from primary with message "{message}" '
                f"while loading TargetModel {target}. See {instance.log_path} for more "
                "information.",
                status,
                message,
                self.core.log_stream(labels[0], instance.log_path),
            )
        instance.models.add(target)
        self._count(labels, instance)

    def _observe_load(
        self, labels: Labels, instance: Instance, doc: dict[str, Any], elapsed_us: float
    ) -> None:
        """Metrics from a load answer: the instance's own timings where it gives them."""
        self.metrics.loading_us.labels(*labels).observe(float(doc.get("loadingTimeUs", elapsed_us)))
        downloading_us = doc.get("downloadingTimeUs")
        if isinstance(downloading_us, int | float):
            self.metrics.downloading_us.labels(*labels).observe(float(downloading_us))
        for gone in doc.get("evicted") or []:
            instance.models.discard(str(gone.get("modelName")))
            self.metrics.unloading_us.labels(*labels).observe(
                float(gone.get("unloadingTimeUs", 0.0))
            )

    async def _post_load(
        self, labels: Labels, instance: Instance, target: str, request: bytes
    ) -> tuple[int, bytes]:
        try:
            status, _headers, out = await self.core.post(instance, b"/models", _JSON, request)
        except TimeoutError as exc:
            raise ModelError(
                f"Loading TargetModel {target} did not finish within {self.core.timeout_s:g} s.",
                0,
                "load timed out",
                self.core.log_stream(labels[0], instance.log_path),
            ) from exc
        return status, out

    def _count(self, labels: Labels, instance: Instance) -> None:
        self.metrics.loaded_count.labels(*labels).set(len(instance.models))
