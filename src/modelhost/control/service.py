"""The SageMaker control-plane operations (JSON 1.1), over the store and the controller.

Each public method takes the request members as a dict and returns the response members.
Input is validated against botocore's own service model first (boto3 checks almost
nothing client-side), then against the rules the model cannot express.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from modelhost.control.bandits import BanditRouting
from modelhost.control.containers import validate_model_containers, validate_shadow_model
from modelhost.control.controller import Controller
from modelhost.control.guardrails import rollback_alarms, rolling_batch, traffic_steps
from modelhost.control.listing import list_page
from modelhost.control.multimodel import check_multi_model
from modelhost.control.validation import validate_input
from modelhost.errors import ValidationException
from modelhost.resources.names import arn
from modelhost.resources.status import EndpointStatus
from modelhost.settings import Settings
from modelhost.store.locations import confine
from modelhost.store.metadata import AlreadyExists, Kind, MetadataStore, Record

Handler = Callable[[dict[str, Any]], dict[str, Any]]

_KIND_WORDS = {
    Kind.MODEL: "model",
    Kind.ENDPOINT_CONFIG: "endpoint configuration",
    Kind.ENDPOINT: "endpoint",
}


class ControlPlane:
    """Create/Describe/List/Delete for models, endpoint configs and endpoints."""

    def __init__(self, settings: Settings, store: MetadataStore, controller: Controller) -> None:
        self.settings = settings
        self.store = store
        self.controller = controller
        # modelhost's own routing extension (bandits), beside the SageMaker operations.
        self.bandits = BanditRouting(store, controller)
        self.operations: dict[str, Handler] = {
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "DeleteModel": self.delete_model,
            "ListModels": self.list_models,
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self.describe_endpoint_config,
            "DeleteEndpointConfig": self.delete_endpoint_config,
            "ListEndpointConfigs": self.list_endpoint_configs,
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "UpdateEndpoint": self.update_endpoint,
            "UpdateEndpointWeightsAndCapacities": self.update_endpoint_weights_and_capacities,
            "DeleteEndpoint": self.delete_endpoint,
            "ListEndpoints": self.list_endpoints,
        }

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = self.operations[operation]
        validate_input(operation, params)
        return handler(params)

    # --- helpers -------------------------------------------------------------------------

    def _arn(self, kind: Kind, name: str) -> str:
        return arn(self.settings.region, self.settings.account_id, str(kind), name)

    def _get(self, kind: Kind, name: str) -> Record:
        rec = self.store.get(kind, name)
        if rec is None:
            raise ValidationException(
                f'Could not find {_KIND_WORDS[kind]} "{self._arn(kind, name)}".'
            )
        return rec

    def _create(
        self, kind: Kind, name: str, spec: dict[str, Any], tags: Any, status: str | None = None
    ) -> str:
        now = time.time()
        record = Record(
            kind, name, self._arn(kind, name), spec, list(tags or []), status, None, now, now
        )
        try:
            self.store.create(record)
        except AlreadyExists:
            raise ValidationException(
                f'Cannot create already existing {_KIND_WORDS[kind]} "{record.arn}".'
            ) from None
        return record.arn

    # --- models --------------------------------------------------------------------------

    def create_model(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("PrimaryContainer") and not p.get("Containers"):
            raise ValidationException(
                "Either PrimaryContainer or Containers must be specified for model "
                f"{p['ModelName']}."
            )
        validate_model_containers(p)
        self._confine_model_data(p)
        check_multi_model(p)
        spec = {k: v for k, v in p.items() if k not in ("ModelName", "Tags")}
        return {"ModelArn": self._create(Kind.MODEL, p["ModelName"], spec, p.get("Tags"))}

    def _confine_model_data(self, p: dict[str, Any]) -> None:
        """Model data only from allowed prefixes, never from the server's own home."""
        containers = [p.get("PrimaryContainer") or {}, *(p.get("Containers") or [])]
        for i, container in enumerate(containers):
            where = "primaryContainer" if i == 0 else f"containers.{i}"
            url = container.get("ModelDataUrl")
            if isinstance(url, str):
                confine(
                    url,
                    self.settings.allowed_data_prefixes,
                    f"{where}.modelDataUrl",
                    [self.settings.home],
                )
            source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
            if isinstance(source.get("S3Uri"), str):
                confine(
                    source["S3Uri"],
                    self.settings.allowed_data_prefixes,
                    f"{where}.modelDataSource.s3DataSource.s3Uri",
                    [self.settings.home],
                )

    def describe_model(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(Kind.MODEL, p["ModelName"])
        return {
            **rec.spec,
            "ModelName": rec.name,
            "ModelArn": rec.arn,
            "CreationTime": rec.created_s,
        }

    def delete_model(self, p: dict[str, Any]) -> dict[str, Any]:
        self._get(Kind.MODEL, p["ModelName"])
        self.store.delete(Kind.MODEL, p["ModelName"])
        return {}

    def list_models(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [
            {"ModelName": r.name, "ModelArn": r.arn, "CreationTime": r.created_s}
            for r in self.store.list(Kind.MODEL)
        ]
        page, token = list_page(
            items,
            p,
            name_key="ModelName",
            sort_keys={"Name": "ModelName", "CreationTime": "CreationTime"},
        )
        return _with_token({"Models": page}, token)

    # --- endpoint configs ----------------------------------------------------------------

    def create_endpoint_config(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["EndpointConfigName"]
        variants = p["ProductionVariants"]
        shadows = p.get("ShadowProductionVariants") or []
        if shadows and (len(variants) != 1 or len(shadows) != 1):
            raise ValidationException(
                "An endpoint config with ShadowProductionVariants must have exactly one "
                "production variant and one shadow variant (as in SageMaker); it has "
                f"{len(variants)} production and {len(shadows)} shadow variants."
            )
        seen: set[str] = set()
        listed = [("ProductionVariants", i, v) for i, v in enumerate(variants, start=1)]
        listed += [("ShadowProductionVariants", i, v) for i, v in enumerate(shadows, start=1)]
        for member, i, v in listed:
            where = f"{member}.{i} ({v['VariantName']})"
            if v["VariantName"] in seen:
                raise ValidationException(
                    f"{where}: VariantName must be unique within the endpoint config."
                )
            seen.add(v["VariantName"])
            if v.get("ServerlessConfig"):
                raise ValidationException(
                    f"{where}: ServerlessConfig is not supported by this modelhost version; "
                    "give InstanceType and InitialInstanceCount."
                )
            if not v.get("ModelName"):
                raise ValidationException(f"{where}: ModelName is required.")
            if "InitialInstanceCount" not in v or "InstanceType" not in v:
                raise ValidationException(
                    f"{where}: InstanceType and InitialInstanceCount are required."
                )
            model = self._get(Kind.MODEL, v["ModelName"])
            if member == "ShadowProductionVariants":
                validate_shadow_model(where, v["ModelName"], model.spec)
        if sum(float(v.get("InitialVariantWeight", 1.0)) for v in variants) <= 0:
            raise ValidationException(
                "The sum of InitialVariantWeight over ProductionVariants must be greater than 0."
            )
        if shadows and float(shadows[0].get("InitialVariantWeight", 1.0)) <= 0:
            raise ValidationException(
                "The InitialVariantWeight of a shadow variant must be greater than 0."
            )
        spec = {k: v for k, v in p.items() if k not in ("EndpointConfigName", "Tags")}
        return {"EndpointConfigArn": self._create(Kind.ENDPOINT_CONFIG, name, spec, p.get("Tags"))}

    def describe_endpoint_config(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(Kind.ENDPOINT_CONFIG, p["EndpointConfigName"])
        return {
            **rec.spec,
            "EndpointConfigName": rec.name,
            "EndpointConfigArn": rec.arn,
            "CreationTime": rec.created_s,
        }

    def delete_endpoint_config(self, p: dict[str, Any]) -> dict[str, Any]:
        self._get(Kind.ENDPOINT_CONFIG, p["EndpointConfigName"])
        self.store.delete(Kind.ENDPOINT_CONFIG, p["EndpointConfigName"])
        return {}

    def list_endpoint_configs(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [
            {"EndpointConfigName": r.name, "EndpointConfigArn": r.arn, "CreationTime": r.created_s}
            for r in self.store.list(Kind.ENDPOINT_CONFIG)
        ]
        page, token = list_page(
            items,
            p,
            name_key="EndpointConfigName",
            sort_keys={"Name": "EndpointConfigName", "CreationTime": "CreationTime"},
        )
        return _with_token({"EndpointConfigs": page}, token)

    # --- endpoints -----------------------------------------------------------------------

    def _snapshot(self, config_name: str) -> dict[str, Any]:
        """Copy the config and its models: a running endpoint must not change (or break
        on restart) when the user deletes or recreates them, as in SageMaker."""
        config = self._get(Kind.ENDPOINT_CONFIG, config_name)
        models = {}
        shadows = config.spec.get("ShadowProductionVariants") or []
        for v in [*config.spec["ProductionVariants"], *shadows]:
            models[v["ModelName"]] = self._get(Kind.MODEL, v["ModelName"]).spec
        return {
            "EndpointConfigName": config_name,
            "Config": copy.deepcopy(config.spec),
            "Models": copy.deepcopy(models),
        }

    def create_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        spec = self._snapshot(p["EndpointConfigName"])
        if p.get("DeploymentConfig"):
            # Kept for later updates that set RetainDeploymentConfig, as in SageMaker.
            self._check_deployment_config(p["DeploymentConfig"], spec)
            spec["DeploymentConfig"] = p["DeploymentConfig"]
        endpoint_arn = self._create(
            Kind.ENDPOINT, p["EndpointName"], spec, p.get("Tags"), status=EndpointStatus.CREATING
        )
        self.controller.wake()
        return {"EndpointArn": endpoint_arn}

    def describe_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(Kind.ENDPOINT, p["EndpointName"])
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
            out["ProductionVariants"] = self._variant_summaries(rec.spec, current)
            bandit = self.controller.bandits.get(rec.name)
            if bandit is not None and current is not None:
                # Bandit routing: the weights in effect are the bandit's, not the config's.
                shares = self.controller.bandits.weights(rec.name, current.production_names())
                for summary in out["ProductionVariants"]:
                    summary["CurrentWeight"] = (shares or {}).get(
                        summary["VariantName"], summary["CurrentWeight"]
                    )
            if rec.spec["Config"].get("ShadowProductionVariants"):
                out["ShadowProductionVariants"] = self._variant_summaries(
                    rec.spec, current, "ShadowProductionVariants"
                )
        if rec.spec.get("DeploymentConfig"):
            out["LastDeploymentConfig"] = rec.spec["DeploymentConfig"]
        pending = rec.spec.get("Pending")
        if pending and rec.status == EndpointStatus.UPDATING:
            # The guarded rollout's current step (ActivatingTraffic, Baking, ...).
            stage = pending.get("Stage") or {
                "Status": "Creating",
                "StartTime": pending["StartTime"],
            }
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": pending["EndpointConfigName"],
                "ProductionVariants": [
                    {**s, "InstanceType": v.get("InstanceType"), "VariantStatus": [stage]}
                    for s, v in zip(
                        self._variant_summaries(pending, None),
                        pending["Config"]["ProductionVariants"],
                        strict=True,
                    )
                ],
                "StartTime": pending["StartTime"],
            }
        return out

    def _variant_summaries(
        self, snapshot: dict[str, Any], dep: Any, member: str = "ProductionVariants"
    ) -> list[dict[str, Any]]:
        out = []
        for v in snapshot["Config"].get(member) or []:
            model = snapshot["Models"].get(v["ModelName"], {})
            containers = [model["PrimaryContainer"]] if model.get("PrimaryContainer") else []
            images = [
                c["Image"] for c in containers or model.get("Containers") or [] if c.get("Image")
            ]
            pending = (snapshot.get("PendingWeights") or {}).get(v["VariantName"], {})
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
                summary["DeployedImages"] = [
                    {"SpecifiedImage": i, "ResolvedImage": i} for i in images
                ]
            out.append(summary)
        return out

    def update_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(Kind.ENDPOINT, p["EndpointName"])
        if rec.status != EndpointStatus.IN_SERVICE:
            raise ValidationException(
                f'Cannot update endpoint "{rec.arn}" while it is {rec.status}; '
                "wait until it is InService."
            )
        pending = self._snapshot(p["EndpointConfigName"])
        config = p.get("DeploymentConfig")
        if config is None and p.get("RetainDeploymentConfig"):
            config = rec.spec.get("DeploymentConfig")
        if config:
            self._check_deployment_config(config, pending, rec.spec)
            pending["DeploymentConfig"] = config
            rec.spec["DeploymentConfig"] = config
        if p.get("RetainAllVariantProperties"):
            _retain(
                rec.spec["Config"], pending["Config"], p.get("ExcludeRetainedVariantProperties")
            )
        pending["StartTime"] = time.time()
        rec.spec["Pending"] = pending
        rec.status = EndpointStatus.UPDATING
        rec.failure_reason = None
        rec.modified_s = time.time()
        self.store.save(rec)
        self.controller.wake()
        return {"EndpointArn": rec.arn}

    def update_endpoint_weights_and_capacities(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(Kind.ENDPOINT, p["EndpointName"])
        if rec.status != EndpointStatus.IN_SERVICE:
            raise ValidationException(
                f'Cannot update endpoint "{rec.arn}" while it is {rec.status}; '
                "wait until it is InService."
            )
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
            if item.get("ServerlessUpdateConfig"):
                raise ValidationException("ServerlessUpdateConfig is not supported yet.")
            if item.get("DesiredInstanceCount") == 0:
                raise ValidationException(
                    f'Variant "{name}": DesiredInstanceCount 0 is not supported; set its '
                    "DesiredWeight to 0 to stop sending it traffic."
                )
            if "DesiredWeight" not in item and "DesiredInstanceCount" not in item:
                raise ValidationException(
                    f'Variant "{name}": give DesiredWeight, DesiredInstanceCount or both.'
                )
            changes[name] = {
                "DesiredWeight": item.get("DesiredWeight"),
                "DesiredInstanceCount": item.get("DesiredInstanceCount"),
            }
        weights = {n: float(v.get("InitialVariantWeight", 1.0)) for n, v in variants.items()}
        for name, change in changes.items():
            if change["DesiredWeight"] is not None:
                weights[name] = float(change["DesiredWeight"])
        if sum(weights.values()) <= 0:
            raise ValidationException("The sum of the variants' weights must be greater than 0.")
        rec.spec["PendingWeights"] = changes
        rec.status = EndpointStatus.UPDATING
        rec.failure_reason = None
        rec.modified_s = time.time()
        self.store.save(rec)
        self.controller.wake()
        return {"EndpointArn": rec.arn}

    def _check_deployment_config(
        self,
        config: dict[str, Any],
        snapshot: dict[str, Any],
        current: dict[str, Any] | None = None,
    ) -> None:
        """Refuse a DeploymentConfig that could not run: one policy, sizes that select
        instances, alarms that exist; a rolling update needs the same variants on both
        sides (it replaces each variant's instances batch by batch)."""
        blue_green = config.get("BlueGreenUpdatePolicy")
        rolling = config.get("RollingUpdatePolicy")
        if blue_green and rolling:
            raise ValidationException(
                "DeploymentConfig takes either BlueGreenUpdatePolicy or RollingUpdatePolicy, "
                "not both."
            )
        counts = {
            v["VariantName"]: int(v.get("InitialInstanceCount", 1))
            for v in snapshot["Config"]["ProductionVariants"]
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
            if self.controller.alarm_state(alarm) is None:
                raise ValidationException(
                    f"AutoRollbackConfiguration names alarm {alarm}, which does not exist; "
                    "create it first (modelhost alarms put, or PUT /api/alarms/{name})."
                )

    def promote_shadow(self, endpoint: str) -> dict[str, Any]:
        """Make the shadow the production variant: a new endpoint config
        `<current>-promoted-<n>` whose single production variant keeps the production
        variant's name, instance count and type but uses the shadow's model, then an
        ordinary UpdateEndpoint to it (the no-downtime path)."""
        rec = self._get(Kind.ENDPOINT, endpoint)
        config = rec.spec["Config"]
        shadows = config.get("ShadowProductionVariants") or []
        if not shadows:
            raise ValidationException(f'Endpoint "{rec.arn}" has no shadow variant to promote.')
        if rec.status != EndpointStatus.IN_SERVICE:
            raise ValidationException(
                f'Cannot promote the shadow of endpoint "{rec.arn}" while it is {rec.status}; '
                "wait until it is InService."
            )
        production = config["ProductionVariants"][0]
        shadow_model = shadows[0]["ModelName"]
        if self.store.get(Kind.MODEL, shadow_model) is None:
            # Deleted since the endpoint was created: recreate it from the snapshot.
            self._create(
                Kind.MODEL, shadow_model, copy.deepcopy(rec.spec["Models"][shadow_model]), []
            )
        current = rec.spec["EndpointConfigName"]
        n = 1
        while self.store.get(Kind.ENDPOINT_CONFIG, f"{current}-promoted-{n}") is not None:
            n += 1
        new_name = f"{current}-promoted-{n}"
        params = {
            k: copy.deepcopy(v)
            for k, v in config.items()
            if k not in ("ProductionVariants", "ShadowProductionVariants")
        }
        params["EndpointConfigName"] = new_name
        params["ProductionVariants"] = [{**copy.deepcopy(production), "ModelName": shadow_model}]
        self.call("CreateEndpointConfig", params)
        out = self.call(
            "UpdateEndpoint", {"EndpointName": endpoint, "EndpointConfigName": new_name}
        )
        return {"EndpointConfigName": new_name, "EndpointArn": out["EndpointArn"]}

    def delete_endpoint(self, p: dict[str, Any]) -> dict[str, Any]:
        rec = self._get(Kind.ENDPOINT, p["EndpointName"])
        rec.status = EndpointStatus.DELETING
        rec.modified_s = time.time()
        self.store.save(rec)
        self.controller.abort(rec.name)
        self.controller.wake()
        return {}

    def list_endpoints(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [
            {
                "EndpointName": r.name,
                "EndpointArn": r.arn,
                "CreationTime": r.created_s,
                "LastModifiedTime": r.modified_s,
                "EndpointStatus": r.status,
            }
            for r in self.store.list(Kind.ENDPOINT)
        ]
        page, token = list_page(
            items,
            p,
            name_key="EndpointName",
            sort_keys={
                "Name": "EndpointName",
                "CreationTime": "CreationTime",
                "Status": "EndpointStatus",
            },
            status_key="EndpointStatus",
        )
        return _with_token({"Endpoints": page}, token)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _with_token(out: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token:
        out["NextToken"] = token
    return out


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
