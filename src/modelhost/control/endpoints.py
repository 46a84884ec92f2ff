"""CreateEndpoint, DescribeEndpoint, DeleteEndpoint, ListEndpoints.

An endpoint's spec is a snapshot of its config and models (`snapshot`), so a running
endpoint does not change when the user deletes or recreates them; the controller
reconciles it (`wake`) and reports what runs (`deployment`).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from modelhost.control.catalog import ENDPOINT, ENDPOINT_CONFIG, MODEL, Catalog, Handler
from modelhost.control.controller import Controller
from modelhost.control.guardrails import rollback_alarms, rolling_batch, traffic_steps
from modelhost.errors import ValidationException
from modelhost.resources.status import EndpointStatus


def snapshot(catalog: Catalog, config_name: str) -> dict[str, Any]:
    """Copy the config and its models: a running endpoint must not change (or break
    on restart) when the user deletes or recreates them, as in SageMaker."""
    config = catalog.get(ENDPOINT_CONFIG, config_name)
    models = {}
    shadows = config.spec.get("ShadowProductionVariants") or []
    for v in [*config.spec["ProductionVariants"], *shadows]:
        models[v["ModelName"]] = catalog.get(MODEL, v["ModelName"]).spec
    return {
        "EndpointConfigName": config_name,
        "Config": copy.deepcopy(config.spec),
        "Models": copy.deepcopy(models),
    }


def check_deployment_config(
    controller: Controller,
    config: dict[str, Any],
    snap: dict[str, Any],
    current: dict[str, Any] | None = None,
) -> None:
    """Refuse a DeploymentConfig that could not run: one policy, sizes that select
    instances, alarms that exist; a rolling update needs the same variants on both
    sides (it replaces each variant's instances batch by batch)."""
    blue_green = config.get("BlueGreenUpdatePolicy")
    rolling = config.get("RollingUpdatePolicy")
    if blue_green and rolling:
        raise ValidationException(
            "DeploymentConfig takes either BlueGreenUpdatePolicy or RollingUpdatePolicy, not both."
        )
    counts = {
        v["VariantName"]: int(v.get("InitialInstanceCount", 1))
        for v in snap["Config"]["ProductionVariants"]
    }
    if blue_green:
        traffic_steps(blue_green["TrafficRoutingConfiguration"], sum(counts.values()))
    if rolling:
        for count in counts.values():
            rolling_batch(rolling["MaximumBatchSize"], count)
            if rolling.get("RollbackMaximumBatchSize"):
                rolling_batch(rolling["RollbackMaximumBatchSize"], count)
        if current is not None:
            old = {v["VariantName"] for v in current["Config"]["ProductionVariants"]}
            if old != set(counts):
                raise ValidationException(
                    "RollingUpdatePolicy replaces instances variant by variant, so the new "
                    f"endpoint config must have the same production variants ({sorted(old)}); "
                    f"it has {sorted(counts)}. Use BlueGreenUpdatePolicy to change variants."
                )
    for alarm in rollback_alarms(config):
        if controller.alarm_state(alarm) is None:
            raise ValidationException(
                f"AutoRollbackConfiguration names alarm {alarm}, which does not exist; "
                "create it first (modelhost alarms put, or PUT /api/alarms/{name})."
            )


def variant_summaries(
    snap: dict[str, Any], dep: Any, member: str = "ProductionVariants"
) -> list[dict[str, Any]]:
    """DescribeEndpoint's summary of each variant of `snap`, counting `dep`'s instances."""
    out = []
    for v in snap["Config"].get(member) or []:
        model = snap["Models"].get(v["ModelName"], {})
        containers = [model["PrimaryContainer"]] if model.get("PrimaryContainer") else []
        images = [c["Image"] for c in containers or model.get("Containers") or [] if c.get("Image")]
        pending = (snap.get("PendingWeights") or {}).get(v["VariantName"], {})
        desired = int(v.get("InitialInstanceCount", 1))
        fleet = None if dep is None else dep.fleets.get(v["VariantName"])
        current = desired if fleet is None else len(fleet.serving())
        weight = float(v.get("InitialVariantWeight", 1.0))
        summary: dict[str, Any] = {
            "VariantName": v["VariantName"],
            "CurrentWeight": weight,
            "DesiredWeight": _or(pending.get("DesiredWeight"), weight),
            "CurrentInstanceCount": current,
            "DesiredInstanceCount": _or(pending.get("DesiredInstanceCount"), desired),
        }
        if images:  # one per container, as SageMaker lists them
            summary["DeployedImages"] = [{"SpecifiedImage": i, "ResolvedImage": i} for i in images]
        out.append(summary)
    return out


class Endpoints:
    """The endpoint operations other than updates (`control/updates.py`)."""

    def __init__(self, catalog: Catalog, controller: Controller) -> None:
        self.catalog = catalog
        self.controller = controller

    def operations(self) -> dict[str, Handler]:
        return {
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "DeleteEndpoint": self.delete_endpoint,
            "ListEndpoints": lambda p: self.catalog.list(ENDPOINT, p),
        }

    def create_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        spec = snapshot(self.catalog, p["EndpointConfigName"])
        if p.get("DeploymentConfig"):
            # Kept for later updates that set RetainDeploymentConfig, as in SageMaker.
            check_deployment_config(self.controller, p["DeploymentConfig"], spec)
            spec["DeploymentConfig"] = p["DeploymentConfig"]
        endpoint_arn = self.catalog.create(
            ENDPOINT, p["EndpointName"], spec, p.get("Tags"), status=EndpointStatus.CREATING
        )
        self.controller.wake()
        return {"EndpointArn": endpoint_arn}

    def describe_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.catalog.get(ENDPOINT, p["EndpointName"])
        out: dict[str, Any] = {
            "EndpointName": rec.name,
            "EndpointArn": rec.arn,
            "EndpointConfigName": rec.spec["EndpointConfigName"],
            "EndpointStatus": rec.status,
            "CreationTime": rec.created_s,
            "LastModifiedTime": rec.modified_s,
        }
        if rec.failure_reason:
            out["FailureReason"] = rec.failure_reason
        dep = self.controller.deployment(rec.name)
        current = (
            dep if dep is not None and dep.config_name == rec.spec["EndpointConfigName"] else None
        )
        if current is not None or rec.status == EndpointStatus.IN_SERVICE:
            out.update(self._running_variants(rec.name, rec.spec, current))
        if rec.spec["Config"].get("AsyncInferenceConfig"):
            out["AsyncInferenceConfig"] = rec.spec["Config"]["AsyncInferenceConfig"]
        if rec.spec.get("DeploymentConfig"):
            out["LastDeploymentConfig"] = rec.spec["DeploymentConfig"]
        pending = rec.spec.get("Pending")
        if pending and rec.status == EndpointStatus.UPDATING:
            out["PendingDeploymentSummary"] = _pending_summary(pending)
        return out

    def _running_variants(self, name: str, spec: dict[str, Any], current: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"ProductionVariants": variant_summaries(spec, current)}
        bandit = self.controller.bandits.get(name)
        if bandit is not None and current is not None:
            # Bandit routing: the weights in effect are the bandit's, not the config's.
            shares = self.controller.bandits.weights(name, current.production_names())
            for summary in out["ProductionVariants"]:
                summary["CurrentWeight"] = (shares or {}).get(
                    summary["VariantName"], summary["CurrentWeight"]
                )
        if spec["Config"].get("ShadowProductionVariants"):
            out["ShadowProductionVariants"] = variant_summaries(
                spec, current, "ShadowProductionVariants"
            )
        return out

    def delete_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self.catalog.get(ENDPOINT, p["EndpointName"])
        rec.status = EndpointStatus.DELETING
        rec.modified_s = time.time()
        self.catalog.store.save(rec)
        self.controller.abort(rec.name)
        self.controller.wake()
        return {}


def _pending_summary(pending: dict[str, Any]) -> dict[str, Any]:
    """PendingDeploymentSummary: the guarded rollout's current step (ActivatingTraffic,
    Baking, ...) for each variant of the new config."""
    stage = pending.get("Stage") or {"Status": "Creating", "StartTime": pending["StartTime"]}
    return {
        "EndpointConfigName": pending["EndpointConfigName"],
        "ProductionVariants": [
            {**s, "InstanceType": v.get("InstanceType"), "VariantStatus": [stage]}
            for s, v in zip(
                variant_summaries(pending, None),
                pending["Config"]["ProductionVariants"],
                strict=True,
            )
        ],
        "StartTime": pending["StartTime"],
    }


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value
