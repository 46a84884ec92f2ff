"""The data plane a transport calls: route, choose a variant, invoke, record, answer.

`DataPlane.route` finds the endpoint in the current snapshot; `DataPlane.invoke` chooses
the variant (TargetVariant, weights or a bandit's weights), hands the request to the
invoker of the variant's kind (single model, multi-model, multi-container), records the
variant's metrics, remembers the variant for bandit rewards, builds shadow copies, and
turns a model's error status into ModelError. Input is validated by the transport
first; what is decided here needs the snapshot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelhost.errors import ServiceUnavailable, ValidationError
from modelhost.fleet.dataplane.core import Headers, Invoker, Sent
from modelhost.fleet.dataplane.multimodel import MultiModelInvoker
from modelhost.fleet.dataplane.pipeline import TARGET_HOST, MultiContainerInvoker
from modelhost.fleet.dataplane.ports import (
    BanditLookup,
    InstanceHealth,
    InstanceTransport,
    Rand,
    RoutingSource,
)
from modelhost.fleet.dataplane.shadow import ShadowJob, ShadowMirror
from modelhost.fleet.dataplane.single import SingleModelInvoker
from modelhost.routing.choose import choose_variant
from modelhost.routing.table import EndpointRoute, TargetMode, VariantRoute
from modelhost.telemetry import shadow_report

if TYPE_CHECKING:
    from modelhost.telemetry.metrics import InvocationMetrics

Response = tuple[int, Headers, bytes]
INFERENCE_ID = b"x-amzn-sagemaker-inference-id"


@dataclass(slots=True)
class Invocation:
    """One InvokeEndpoint request, validated by the transport (not frozen: a frozen
    dataclass's `__init__` costs a microsecond on the hot path; nobody changes it)."""

    endpoint: str
    headers: dict[bytes, bytes]  # every request header (lower-case names)
    forward: Headers  # the ones a single container receives, in request order
    body: bytes
    target_model: str | None
    target_variant: str | None
    started_s: float  # time.perf_counter() when the request arrived
    request_id: str


@dataclass(frozen=True)
class Limits:
    """The data plane's settings, passed explicitly."""

    timeout_s: float
    max_payload_bytes: int
    model_busy_outstanding: int
    home: Path  # shadow pairs are captured under it


class DataPlane:
    """Invokes endpoints from routing snapshots; everything it needs is injected."""

    def __init__(
        self,
        routes: RoutingSource,
        health: InstanceHealth,
        http: InstanceTransport,
        rand: Rand,
        bandits: BanditLookup,
        metrics: InvocationMetrics,
        limits: Limits,
        log_stream: Callable[[str, Path | None], str],
    ) -> None:
        self.routes = routes
        self.bandits = bandits
        self.metrics = metrics
        self.limits = limits
        self.core = Invoker(http, health, rand, limits.timeout_s, log_stream)
        self.single = SingleModelInvoker(self.core)
        self.multi_model = MultiModelInvoker(
            self.core, metrics.models, limits.model_busy_outstanding
        )
        self.multi_container = MultiContainerInvoker(self.core, metrics.containers)
        self.shadows = ShadowMirror(self.core, metrics, limits.home)

    def route(self, endpoint: str, account_id: str) -> EndpointRoute:
        """The endpoint's route; ValidationError when it is unknown or not serving."""
        route = self.routes.table.endpoints.get(endpoint)
        if route is None:
            raise ValidationError(f"Endpoint {endpoint} of account {account_id} not found.")
        if route.unavailable_reason:
            raise ValidationError(route.unavailable_reason)
        return route

    def variant(self, route: EndpointRoute, target_variant: str | None) -> VariantRoute:
        if target_variant is not None:
            variant = route.variant(target_variant)
            if variant is None:
                raise ValidationError(
                    f"Variant {target_variant} not found for endpoint {route.name}."
                )
        else:
            variant = choose_variant(route.variants, self.core.rand)
        if variant is None or not variant.instances:
            raise ServiceUnavailable(
                f"Endpoint {route.name} has no healthy instance right now; retry shortly."
            )
        return variant

    async def invoke(
        self, route: EndpointRoute, req: Invocation, shadow_jobs: list[ShadowJob]
    ) -> Response:
        """The answer to `req`; shadow copies to start after it is sent are appended to
        `shadow_jobs` (also when the model answered an error)."""
        variant = self.variant(route, req.target_variant)
        mode = variant.instances[0].mode  # one launch spec per variant: the first tells
        if mode is TargetMode.MULTI_CONTAINER:
            sent = await self.multi_container.invoke(req.endpoint, variant, req.headers, req.body)
            self._record(req, variant, sent)
            self._check(req.endpoint, sent)
            return self._answer(req, variant, sent, self._observe(req, variant.name))
        self._check_kind(req, mode)
        if req.target_model is not None:
            sent = await self.multi_model.invoke(
                req.endpoint, variant, req.target_model, req.forward, req.body
            )
        else:
            sent = await self.single.invoke(req.endpoint, variant, req.forward, req.body)
        self._record(req, variant, sent)
        inference_id = self._observe(req, variant.name)
        if route.shadows:
            inference_id = inference_id or _inference_id(req.headers)
            ctype = sent.headers.get(b"content-type")
            production = shadow_report.side(
                variant.name,
                sent.status,
                sent.model_us,
                ctype.decode("latin-1") if ctype is not None else None,
                sent.body,
            )
            shadow_jobs.extend(
                self.shadows.jobs(
                    req.endpoint, route.shadows, req.forward, req.body, inference_id, production
                )
            )
        self._check(req.endpoint, sent)
        return self._answer(req, variant, sent, inference_id)

    def _check_kind(self, req: Invocation, mode: TargetMode) -> None:
        name = req.endpoint
        if TARGET_HOST in req.headers:
            raise ValidationError(
                f"Endpoint {name} is not a multi-container endpoint; remove "
                "TargetContainerHostname."
            )
        if (mode is not TargetMode.MULTI_MODEL) != (req.target_model is None):
            raise ValidationError(
                f"Endpoint {name} is a multi-model endpoint; give TargetModel (the artifact "
                "under the model's ModelDataUrl prefix, e.g. model.tar.gz)."
                if req.target_model is None
                else f"Endpoint {name} is not a multi-model endpoint; remove TargetModel."
            )

    def _record(self, req: Invocation, variant: VariantRoute, sent: Sent) -> None:
        self.metrics.series(req.endpoint, variant.name).record(
            status=sent.status,
            instances=len(variant.instances),
            model_us=sent.model_us,
            total_us=(time.perf_counter() - req.started_s) * 1e6,
        )

    def _observe(self, req: Invocation, variant: str) -> str | None:
        """Remember who answered, so a reward for this id credits the right variant."""
        bandit = self.bandits(req.endpoint)
        if bandit is None:
            return None
        inference_id = _inference_id(req.headers)
        bandit.observe(inference_id, variant)
        return inference_id

    def _check(self, endpoint: str, sent: Sent) -> None:
        log_path = sent.log_path or sent.instance.log_path
        if sent.status >= 400:
            raise self.core.model_error(endpoint, sent.status, sent.body, sent.container, log_path)
        limit = self.limits.max_payload_bytes
        if len(sent.body) > limit:
            raise self.core.too_large(endpoint, sent.status, len(sent.body), limit, log_path)

    def _answer(
        self, req: Invocation, variant: VariantRoute, sent: Sent, bandit_id: str | None
    ) -> Response:
        out = sent.body
        headers = [
            (b"content-type", sent.headers.get(b"content-type", b"application/octet-stream")),
            (b"x-amzn-invoked-production-variant", variant.name.encode()),
            (b"x-amzn-requestid", req.request_id.encode()),
            (b"content-length", str(len(out)).encode()),
        ]
        custom = sent.headers.get(b"x-amzn-sagemaker-custom-attributes")
        if custom is not None:
            headers.append((b"x-amzn-sagemaker-custom-attributes", custom))
        if bandit_id is not None:
            headers.append((b"x-modelhost-inference-id", bandit_id.encode()))
        return sent.status, headers, out


def _inference_id(headers: dict[bytes, bytes]) -> str:
    """The caller's InferenceId, or a fresh one (shadow pairs and bandit rewards need one)."""
    given = headers.get(INFERENCE_ID)
    return given.decode("latin-1") if given is not None else str(uuid.uuid4())
