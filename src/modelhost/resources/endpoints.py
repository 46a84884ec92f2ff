"""Models, endpoint configs, production variants and endpoints as typed values (no I/O).

The metadata store keeps each resource's spec as the JSON the API accepted (endpoints add
their runtime state: the pending update, bandit routing, events). These classes are that
JSON parsed in one place: `from_spec` reads a stored spec, `to_spec` writes it back in the
same format (members this module does not model are carried in `extra` and echoed), so
state directories written before these classes existed still load, and the controller
works on typed values instead of raw dicts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from modelhost.resources.containers import is_multi_container
from modelhost.resources.serverless import ServerlessConfig
from modelhost.resources.status import EndpointStatus


class EndpointUpdate(StrEnum):
    """What an Updating endpoint is moving to (stored as which member its spec has)."""

    NONE = "None"
    CONFIG = "Config"  # UpdateEndpoint: another endpoint config (spec["Pending"])
    WEIGHTS = "Weights"  # UpdateEndpointWeightsAndCapacities (spec["PendingWeights"])


@dataclass
class Model:
    """A model's container definition (PrimaryContainer or Containers, as given)."""

    name: str
    spec: dict[str, Any]

    @property
    def multi_container(self) -> bool:
        return is_multi_container(self.spec)


_VARIANT_KEYS = ("VariantName", "ModelName", "InitialInstanceCount", "InitialVariantWeight")


@dataclass
class ProductionVariant:
    """One (production or shadow) variant of an endpoint config.

    `initial_*` are None when the spec leaves them out; `instance_count` and `weight` are
    the values in effect (SageMaker's defaults: 1 instance, weight 1.0)."""

    name: str
    model_name: str
    initial_instance_count: int | None = None
    initial_weight: float | None = None
    shadow: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def instance_count(self) -> int:
        """Instances to start with; a serverless variant starts with its warm ones only."""
        serverless = self.serverless
        if serverless is not None:
            return serverless.warm
        return 1 if self.initial_instance_count is None else self.initial_instance_count

    @property
    def serverless(self) -> ServerlessConfig | None:
        spec = self.extra.get("ServerlessConfig")
        return ServerlessConfig.from_spec(spec) if spec else None

    @property
    def weight(self) -> float:
        return 1.0 if self.initial_weight is None else self.initial_weight

    @property
    def instance_type(self) -> str | None:
        value = self.extra.get("InstanceType")
        return None if value is None else str(value)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], shadow: bool = False) -> ProductionVariant:
        count = spec.get("InitialInstanceCount")
        weight = spec.get("InitialVariantWeight")
        return cls(
            name=spec["VariantName"],
            model_name=spec["ModelName"],
            initial_instance_count=None if count is None else int(count),
            initial_weight=None if weight is None else float(weight),
            shadow=shadow,
            extra={k: copy.deepcopy(v) for k, v in spec.items() if k not in _VARIANT_KEYS},
        )

    def to_spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"VariantName": self.name, "ModelName": self.model_name}
        if self.initial_instance_count is not None:
            out["InitialInstanceCount"] = self.initial_instance_count
        if self.initial_weight is not None:
            out["InitialVariantWeight"] = self.initial_weight
        out.update(copy.deepcopy(self.extra))
        return out


@dataclass
class EndpointConfig:
    """An endpoint config: production variants, shadow variants (None when the spec has
    no ShadowProductionVariants member) and the other members (data capture, ...)."""

    name: str
    variants: list[ProductionVariant]
    shadows: list[ProductionVariant] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any]) -> EndpointConfig:
        shadows = spec.get("ShadowProductionVariants")
        return cls(
            name=name,
            variants=[ProductionVariant.from_spec(v) for v in spec["ProductionVariants"]],
            shadows=None
            if shadows is None
            else [ProductionVariant.from_spec(v, True) for v in shadows],
            extra={
                k: copy.deepcopy(v)
                for k, v in spec.items()
                if k not in ("ProductionVariants", "ShadowProductionVariants")
            },
        )

    def to_spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ProductionVariants": [v.to_spec() for v in self.variants]}
        if self.shadows is not None:
            out["ShadowProductionVariants"] = [v.to_spec() for v in self.shadows]
        out.update(copy.deepcopy(self.extra))
        return out

    @property
    def shadow_variants(self) -> list[ProductionVariant]:
        return self.shadows or []

    @property
    def all_variants(self) -> list[ProductionVariant]:
        return [*self.variants, *self.shadow_variants]

    def production_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}

    def variant(self, name: str) -> ProductionVariant | None:
        return next((v for v in self.all_variants if v.name == name), None)


@dataclass
class DeploymentStage:
    """The current step of a pending update (ActivatingTraffic, Baking, RollingBack...)."""

    status: str
    message: str | None
    start_time_s: float

    def to_spec(self) -> dict[str, Any]:
        return {
            "Status": self.status,
            "StatusMessage": self.message,
            "StartTime": self.start_time_s,
        }


_SNAPSHOT_KEYS = (
    "EndpointConfigName",
    "Config",
    "Models",
    "DeploymentConfig",
    "StartTime",
    "Stage",
)


@dataclass
class ConfigSnapshot:
    """An endpoint config and its models as they were when the endpoint (or its update)
    was requested: a running endpoint does not change when the user deletes or recreates
    them. `deployment_config` is the DeploymentConfig (blue/green or rolling) given."""

    config: EndpointConfig
    models: dict[str, Model]
    deployment_config: dict[str, Any] | None = None
    start_time_s: float | None = None
    stage: DeploymentStage | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config_name(self) -> str:
        return self.config.name

    @property
    def blue_green_policy(self) -> dict[str, Any] | None:
        return (self.deployment_config or {}).get("BlueGreenUpdatePolicy")

    @property
    def rolling_policy(self) -> dict[str, Any] | None:
        return (self.deployment_config or {}).get("RollingUpdatePolicy")

    @classmethod
    def from_spec(cls, spec: dict[str, Any], keep_extra: bool = True) -> ConfigSnapshot:
        stage = spec.get("Stage")
        start = spec.get("StartTime")
        return cls(
            config=EndpointConfig.from_spec(spec["EndpointConfigName"], spec["Config"]),
            models={n: Model(n, copy.deepcopy(m)) for n, m in spec["Models"].items()},
            deployment_config=copy.deepcopy(spec.get("DeploymentConfig")),
            start_time_s=None if start is None else float(start),
            stage=None
            if stage is None
            else DeploymentStage(stage["Status"], stage.get("StatusMessage"), stage["StartTime"]),
            extra={k: copy.deepcopy(v) for k, v in spec.items() if k not in _SNAPSHOT_KEYS}
            if keep_extra
            else {},
        )

    def to_spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "EndpointConfigName": self.config.name,
            "Config": self.config.to_spec(),
            "Models": {n: copy.deepcopy(m.spec) for n, m in self.models.items()},
        }
        if self.deployment_config is not None:
            out["DeploymentConfig"] = copy.deepcopy(self.deployment_config)
        if self.start_time_s is not None:
            out["StartTime"] = self.start_time_s
        if self.stage is not None:
            out["Stage"] = self.stage.to_spec()
        out.update(copy.deepcopy(self.extra))
        return out


@dataclass
class WeightChange:
    """One variant's part of UpdateEndpointWeightsAndCapacities (None: unchanged)."""

    desired_weight: float | None = None
    desired_instance_count: int | None = None
    # A serverless variant's ServerlessUpdateConfig (MaxConcurrency, ProvisionedConcurrency).
    serverless: dict[str, int] | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> WeightChange:
        weight = spec.get("DesiredWeight")
        count = spec.get("DesiredInstanceCount")
        serverless = spec.get("ServerlessUpdateConfig")
        return cls(
            None if weight is None else float(weight),
            None if count is None else int(count),
            None if serverless is None else {k: int(v) for k, v in serverless.items()},
        )

    def to_spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "DesiredWeight": self.desired_weight,
            "DesiredInstanceCount": self.desired_instance_count,
        }
        if self.serverless is not None:
            out["ServerlessUpdateConfig"] = dict(self.serverless)
        return out


@dataclass
class EndpointEvent:
    """One entry of an endpoint's event history."""

    time_s: float
    status: str
    message: str

    def to_spec(self) -> dict[str, Any]:
        return {"Time": self.time_s, "Status": self.status, "Message": self.message}


_ENDPOINT_KEYS = ("Pending", "PendingWeights", "Routing", "Events")


@dataclass
class Endpoint:
    """An endpoint's desired state: the config it serves (`current`), at most one pending
    update (`pending`: another config; `pending_weights`: weights and counts), bandit
    routing (RoutingConfig and reward counts, as stored) and its event history."""

    name: str
    status: EndpointStatus
    failure_reason: str | None
    current: ConfigSnapshot
    pending: ConfigSnapshot | None = None
    pending_weights: dict[str, WeightChange] | None = None
    routing: dict[str, Any] | None = None
    events: list[EndpointEvent] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def update(self) -> EndpointUpdate:
        """The pending update an Updating endpoint carries (weights win, as before)."""
        if self.pending_weights is not None:
            return EndpointUpdate.WEIGHTS
        if self.pending is not None:
            return EndpointUpdate.CONFIG
        return EndpointUpdate.NONE

    @classmethod
    def from_spec(
        cls, name: str, spec: dict[str, Any], status: str | None, failure_reason: str | None
    ) -> Endpoint:
        pending = spec.get("Pending")
        weights = spec.get("PendingWeights")
        return cls(
            name=name,
            status=EndpointStatus(status or EndpointStatus.CREATING),
            failure_reason=failure_reason,
            current=ConfigSnapshot.from_spec(spec, keep_extra=False),
            pending=ConfigSnapshot.from_spec(pending) if pending else None,
            pending_weights=None
            if weights is None
            else {n: WeightChange.from_spec(c) for n, c in weights.items()},
            routing=copy.deepcopy(spec.get("Routing")),
            events=[
                EndpointEvent(e["Time"], e["Status"], e["Message"])
                for e in spec.get("Events") or []
            ],
            extra={
                k: copy.deepcopy(v)
                for k, v in spec.items()
                if k not in _ENDPOINT_KEYS and k not in _SNAPSHOT_KEYS
            },
        )

    def to_spec(self) -> dict[str, Any]:
        out = self.current.to_spec()
        if self.pending is not None:
            out["Pending"] = self.pending.to_spec()
        if self.pending_weights is not None:
            out["PendingWeights"] = {n: c.to_spec() for n, c in self.pending_weights.items()}
        if self.routing is not None:
            out["Routing"] = copy.deepcopy(self.routing)
        if self.events:
            out["Events"] = [e.to_spec() for e in self.events]
        out.update(copy.deepcopy(self.extra))
        return out
