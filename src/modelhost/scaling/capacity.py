"""A variant's capacity in the endpoint's desired state, for the API and the autoscaler.

The capacity of a dimension is a member of the production variant in the endpoint's
current config (`InitialInstanceCount` for DesiredInstanceCount). Setting it changes the
desired state only; the controller's capacity reconciler then starts or drains instances
(`control/reconcilers/capacity.py`), and the endpoint stays InService meanwhile.
"""

from __future__ import annotations

from typing import Any

from modelhost.control.controller import Controller
from modelhost.resources.endpoints import Endpoint, ProductionVariant
from modelhost.resources.status import EndpointStatus
from modelhost.scaling.book import Dimension


def _read(spec: dict[str, Any], member: str) -> Any:
    value: Any = spec
    for part in member.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _write(spec: dict[str, Any], member: str, value: int) -> None:
    *path, last = member.split(".")
    for part in path:
        spec = spec.setdefault(part, {})
    spec[last] = value


class Capacity:
    """Reads and sets the capacity a scalable target names."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def endpoint(self, name: str) -> Endpoint | None:
        return self.controller.state.status.get(name)

    @staticmethod
    def variant(endpoint: Endpoint, name: str) -> ProductionVariant | None:
        return next((v for v in endpoint.current.config.variants if v.name == name), None)

    def current(self, endpoint: str, variant: str, dim: Dimension) -> int | None:
        """The capacity now desired (what AWS calls the target's current capacity)."""
        found = self.endpoint(endpoint)
        v = None if found is None else self.variant(found, variant)
        if v is None:
            return None
        value = _read(v.to_spec(), dim.member)
        return 1 if value is None else int(value)

    def unscalable(self, endpoint: str, variant: str, dim: Dimension) -> str | None:
        """Why the variant cannot be a target of `dim` (as AWS refuses it), else None:
        a serverless variant scales its ProvisionedConcurrency only, and only when it
        has one; an instance-backed variant scales its instance count only."""
        found = self.endpoint(endpoint)
        v = None if found is None else self.variant(found, variant)
        if v is None:
            return None
        serverless = v.serverless
        if dim.serverless and (serverless is None or not serverless.provisioned_concurrency):
            return (
                f"{dim.name} scales a serverless variant with ProvisionedConcurrency; variant "
                f"{variant} of endpoint {endpoint} has "
                + ("no ServerlessConfig." if serverless is None else "no ProvisionedConcurrency.")
            )
        if not dim.serverless and serverless is not None:
            return (
                f"Variant {variant} of endpoint {endpoint} is serverless; scale its "
                "provisioned concurrency (sagemaker:variant:DesiredProvisionedConcurrency)."
            )
        return None

    def most(self, endpoint: str, variant: str, dim: Dimension) -> int | None:
        """The largest MaxCapacity the target takes: a serverless variant's provisioned
        concurrency cannot exceed its MaxConcurrency; None when unbounded."""
        found = self.endpoint(endpoint)
        v = None if found is None else self.variant(found, variant)
        if not dim.serverless or v is None or v.serverless is None:
            return None
        return v.serverless.max_concurrency

    def least(self, endpoint: str, dim: Dimension) -> int:
        """The least MinCapacity the target takes: 0 for an asynchronous endpoint (its
        queue holds requests while no instance runs, SageMaker's scale to zero), else the
        dimension's own minimum."""
        found = self.endpoint(endpoint)
        if found is not None and found.current.config.extra.get("AsyncInferenceConfig"):
            return 0
        return dim.min_capacity

    def serving(self, endpoint: str, variant: str, dim: Dimension | None = None) -> int | None:
        """Instances that take traffic now (None without a running fleet). For provisioned
        concurrency, the warm instances the fleet keeps: on-demand ones come and go."""
        dep = self.controller.deployment(endpoint)
        fleet = None if dep is None else dep.fleets.get(variant)
        if fleet is None:
            return None
        if dim is not None and dim.serverless:
            return min(len(fleet.serving()), fleet.desired)
        return len(fleet.serving())

    def blocked(self, endpoint: str) -> str | None:
        """Why the capacity cannot change now (SageMaker refuses it unless InService)."""
        found = self.endpoint(endpoint)
        if found is None:
            return f"Endpoint {endpoint} does not exist."
        if found.status != EndpointStatus.IN_SERVICE:
            # AWS: "auto scaling is blocked while the update operation is in progress"
            # (SageMaker's "Update endpoints that use auto scaling").
            return (
                f"The endpoint {endpoint} is in {found.status} status; auto scaling is "
                "blocked while an endpoint update is in progress, and the capacity can "
                "change only when it is InService."
            )
        return None

    def set(self, endpoint: str, variant: str, dim: Dimension, value: int) -> str | None:
        """Set the desired capacity; the reason when it cannot be set now."""
        reason = self.blocked(endpoint)
        if reason is not None:
            return reason
        missing: list[str] = []

        def change(e: Endpoint) -> None:
            variants = e.current.config.variants
            for i, v in enumerate(variants):
                if v.name == variant:
                    spec = v.to_spec()
                    _write(spec, dim.member, value)
                    variants[i] = ProductionVariant.from_spec(spec)
                    return
            missing.append(variant)

        if self.controller.state.status.update(endpoint, change, touch=False, fenced=False) is None:
            return f"Endpoint {endpoint} does not exist."
        if missing:
            return f"Endpoint {endpoint} has no variant {variant}."
        self.controller.wake()
        return None
