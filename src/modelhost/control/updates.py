"""UpdateEndpoint, UpdateEndpointWeightsAndCapacities, and promoting a shadow variant.

An update only records what is wanted (`Pending`, `PendingWeights`) and marks the
endpoint Updating; the controller carries it out (deployment and rollout) and clears it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from modelhost.control.catalog import ENDPOINT, ENDPOINT_CONFIG, MODEL, Catalog, Handler
from modelhost.control.controller import Controller
from modelhost.control.endpoints import check_deployment_config, snapshot
from modelhost.control.serverless import check_serverless_update
from modelhost.errors import ValidationException
from modelhost.resources.status import EndpointStatus
from modelhost.store.metadata import Kind, Record

Call = Callable[[str, dict[str, Any]], dict[str, Any]]


class EndpointUpdates:
    """The update operations. `call` runs another operation with its input validated
    (promoting a shadow is CreateEndpointConfig then UpdateEndpoint)."""

    def __init__(
        self,
        catalog: Catalog,
        controller: Controller,
        call: Callable[[str, dict[str, Any]], dict[str, Any]],
    ) -> None:
        self.catalog = catalog
        self.controller = controller
        self.call = call

    def operations(self) -> dict[str, Handler]:
        return {
            "UpdateEndpoint": self.update_endpoint,
            "UpdateEndpointWeightsAndCapacities": self.update_endpoint_weights_and_capacities,
        }

    def _in_service(self, name: str, doing: str = "update endpoint") -> Record:
        rec = self.catalog.get(ENDPOINT, name)
        if rec.status != EndpointStatus.IN_SERVICE:
            raise ValidationException(
                f'Cannot {doing} "{rec.arn}" while it is {rec.status}; wait until it is InService.'
            )
        return rec

    def _mark_updating(self, rec: Record) -> dict[str, Any]:
        rec.status = EndpointStatus.UPDATING
        rec.failure_reason = None
        rec.modified_s = time.time()
        self.catalog.store.save(rec)
        self.controller.wake()
        return {"EndpointArn": rec.arn}

    def update_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._in_service(p["EndpointName"])
        pending = snapshot(self.catalog, p["EndpointConfigName"])
        config = p.get("DeploymentConfig")
        if config is None and p.get("RetainDeploymentConfig"):
            config = rec.spec.get("DeploymentConfig")
        if config:
            check_deployment_config(self.controller, config, pending, rec.spec)
            pending["DeploymentConfig"] = config
            rec.spec["DeploymentConfig"] = config
        if p.get("RetainAllVariantProperties"):
            _retain(
                rec.spec["Config"], pending["Config"], p.get("ExcludeRetainedVariantProperties")
            )
        pending["StartTime"] = time.time()
        rec.spec["Pending"] = pending
        return self._mark_updating(rec)

    def update_endpoint_weights_and_capacities(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._in_service(p["EndpointName"])
        variants = {v["VariantName"]: v for v in rec.spec["Config"]["ProductionVariants"]}
        changes: dict[str, dict[str, Any]] = {}
        for item in p["DesiredWeightsAndCapacities"]:
            name = item["VariantName"]
            if name not in variants:
                raise ValidationException(
                    f'The variant "{name}" is not present in endpoint "{rec.arn}"; it has '
                    f"{', '.join(sorted(variants))}."
                )
            if name in changes:
                raise ValidationException(f'The variant "{name}" is given more than once.')
            _check_weight_and_capacity(name, item)
            changes[name] = {
                "DesiredWeight": item.get("DesiredWeight"),
                "DesiredInstanceCount": item.get("DesiredInstanceCount"),
            }
            update = check_serverless_update(name, variants[name], item)
            if update is not None:
                changes[name]["ServerlessUpdateConfig"] = update
        weights = {n: float(v.get("InitialVariantWeight", 1.0)) for n, v in variants.items()}
        for name, change in changes.items():
            if change["DesiredWeight"] is not None:
                weights[name] = float(change["DesiredWeight"])
        if sum(weights.values()) <= 0:
            raise ValidationException("The sum of the variants' weights must be greater than 0.")
        rec.spec["PendingWeights"] = changes
        return self._mark_updating(rec)

    def promote_shadow(self, endpoint: str) -> dict[str, Any]:
        """Make the shadow the production variant: a new endpoint config
        `<current>-promoted-<n>` whose single production variant keeps the production
        variant's name, instance count and type but uses the shadow's model, then an
        ordinary UpdateEndpoint to it (the no-downtime path)."""
        rec = self.catalog.get(ENDPOINT, endpoint)
        config = rec.spec["Config"]
        shadows = config.get("ShadowProductionVariants") or []
        if not shadows:
            raise ValidationException(f'Endpoint "{rec.arn}" has no shadow variant to promote.')
        self._in_service(endpoint, "promote the shadow of endpoint")
        production = config["ProductionVariants"][0]
        shadow_model = shadows[0]["ModelName"]
        if self.catalog.store.get(Kind.MODEL, shadow_model) is None:
            # Deleted since the endpoint was created: recreate it from the snapshot.
            spec = copy.deepcopy(rec.spec["Models"][shadow_model])
            self.catalog.create(MODEL, shadow_model, spec, [])
        current = rec.spec["EndpointConfigName"]
        n = 1
        while self.catalog.store.get(Kind.ENDPOINT_CONFIG, f"{current}-promoted-{n}") is not None:
            n += 1
        new_name = f"{current}-promoted-{n}"
        params = {
            k: copy.deepcopy(v)
            for k, v in config.items()
            if k not in ("ProductionVariants", "ShadowProductionVariants")
        }
        params[ENDPOINT_CONFIG.name_key] = new_name
        params["ProductionVariants"] = [{**copy.deepcopy(production), "ModelName": shadow_model}]
        self.call("CreateEndpointConfig", params)
        out = self.call(
            "UpdateEndpoint", {"EndpointName": endpoint, "EndpointConfigName": new_name}
        )
        return {"EndpointConfigName": new_name, "EndpointArn": out["EndpointArn"]}


def _check_weight_and_capacity(name: str, item: dict[str, Any]) -> None:
    if item.get("DesiredInstanceCount") == 0:
        raise ValidationException(
            f'Variant "{name}": DesiredInstanceCount 0 is not supported; set its '
            "DesiredWeight to 0 to stop sending it traffic."
        )
    if not {"DesiredWeight", "DesiredInstanceCount", "ServerlessUpdateConfig"} & set(item):
        raise ValidationException(
            f'Variant "{name}": give DesiredWeight, DesiredInstanceCount or ServerlessUpdateConfig.'
        )


def _retain(old: dict[str, Any], new: dict[str, Any], exclude: Any) -> None:
    """RetainAllVariantProperties: keep current instance counts and weights of variants
    that exist in both configs, unless excluded."""
    excluded = {e["VariantPropertyType"] for e in exclude or []}
    current = {v["VariantName"]: v for v in old["ProductionVariants"]}
    for v in new["ProductionVariants"]:
        prev = current.get(v["VariantName"])
        if prev is None:
            continue
        if "DesiredInstanceCount" not in excluded and "InitialInstanceCount" in prev:
            v["InitialInstanceCount"] = prev["InitialInstanceCount"]
        if "DesiredWeight" not in excluded and "InitialVariantWeight" in prev:
            v["InitialVariantWeight"] = prev["InitialVariantWeight"]
