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
   it again once.

What each instance holds is learned from these answers (`Instance.models`): loads add,
the `evicted` list of a load answer and 404s remove. A 507 (the model alone is larger
than the instance's budget) reaches the client as ModelError with OriginalStatusCode 507.
"""

from __future__ import annotations

import asyncio
import json
import time
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
        retried_stale = reloaded = False
        hit: bool | None = None
        while True:
            picked = pick_for_model(
                variant.instances,  # type: ignore[arg-type]
                target,
                self.controller.rand,
                busy,
                frozenset(tried),
            )
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
                status, out_headers, out = await self.controller.client.http.request(
                    instance.port, b"POST", path, headers, body, self.timeout_s
                )
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
            if status == 404 and not reloaded:
                # Unloaded behind our back (DELETE /models, an instance restart): load again.
                reloaded, hit = True, False
                instance.models.discard(target)
                self._count(labels, instance)
                continue
            self._bound(labels, target, hit)
            return Sent(status, out_headers, out, instance, started)

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
        elapsed_us = (time.perf_counter() - started) * 1e6
        doc = _json_object(out)
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


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


async def loaded_models(controller: Controller, endpoint: str, timeout_s: float) -> dict[str, Any]:
    """What each instance of `endpoint` holds, asked of the instances (`GET /models`)."""
    deployment = controller.deployment(endpoint)
    instances: list[dict[str, Any]] = []
    if deployment is not None:
        for variant, fleet in deployment.fleets.items():
            if fleet.spec.model_data_prefix is None:
                continue
            for inst in fleet.serving():
                instances.append(await _instance_models(controller, variant, inst, timeout_s))
    return {"EndpointName": endpoint, "Instances": instances}


async def _instance_models(
    controller: Controller, variant: str, inst: Instance, timeout_s: float
) -> dict[str, Any]:
    models: list[dict[str, Any]] = []
    token: str | None = None
    doc: dict[str, Any] = {}
    while True:
        query = b"" if token is None else b"?next_page_token=" + quote(token).encode()
        try:
            status, _h, out = await controller.client.http.request(
                inst.port, b"GET", b"/models" + query, [], b"", timeout_s
            )
        except (InstanceUnreachable, InstanceDisconnected, TimeoutError) as exc:
            return {"InstanceId": inst.instance_id, "VariantName": variant, "Error": str(exc)}
        doc = _json_object(out) if status == 200 else {}
        models.extend(
            {
                "ModelName": m.get("modelName"),
                "MemoryBytes": m.get("memoryBytes"),
                "InFlight": m.get("inFlight"),
            }
            for m in doc.get("models") or []
        )
        token = doc.get("nextPageToken")
        if not token:
            break
    # A server that lists fewer models than we believed: believe the server.
    inst.models.intersection_update(m["ModelName"] for m in models)
    return {
        "InstanceId": inst.instance_id,
        "VariantName": variant,
        "Models": models,
        "BudgetBytes": doc.get("budgetBytes"),
        "UsedBytes": doc.get("usedBytes"),
        "Outstanding": inst.outstanding,
    }
