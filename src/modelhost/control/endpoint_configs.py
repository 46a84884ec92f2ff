"""CreateEndpointConfig, DescribeEndpointConfig, DeleteEndpointConfig, ListEndpointConfigs."""

from __future__ import annotations

from typing import Any

from modelhost.control.catalog import ENDPOINT_CONFIG, MODEL, Catalog, Handler
from modelhost.control.containers import validate_shadow_model
from modelhost.errors import ValidationException
from modelhost.store.locations import confine


class EndpointConfigs:
    """The endpoint-config operations. A config is stored as its accepted request."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def operations(self) -> dict[str, Handler]:
        return {
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": lambda p: self.catalog.describe(
                ENDPOINT_CONFIG, p["EndpointConfigName"]
            ),
            "DeleteEndpointConfig": lambda p: self.catalog.delete(
                ENDPOINT_CONFIG, p["EndpointConfigName"]
            ),
            "ListEndpointConfigs": lambda p: self.catalog.list(ENDPOINT_CONFIG, p),
        }

    def create_endpoint_config(self, p: dict[str, Any]) -> dict[str, Any]:
        variants = p["ProductionVariants"]
        shadows = p.get("ShadowProductionVariants") or []
        if shadows and (len(variants) != 1 or len(shadows) != 1):
            raise ValidationException(
                "An endpoint config with ShadowProductionVariants must have exactly one "
                "production variant and one shadow variant (as in SageMaker); it has "
                f"{len(variants)} production and {len(shadows)} shadow variants."
            )
        self._check_variants(variants, shadows)
        if p.get("AsyncInferenceConfig"):
            self._check_async(p["AsyncInferenceConfig"])
        if sum(float(v.get("InitialVariantWeight", 1.0)) for v in variants) <= 0:
            raise ValidationException(
                "The sum of InitialVariantWeight over ProductionVariants must be greater than 0."
            )
        if shadows and float(shadows[0].get("InitialVariantWeight", 1.0)) <= 0:
            raise ValidationException(
                "The InitialVariantWeight of a shadow variant must be greater than 0."
            )
        spec = {k: v for k, v in p.items() if k not in ("EndpointConfigName", "Tags")}
        created = self.catalog.create(ENDPOINT_CONFIG, p["EndpointConfigName"], spec, p.get("Tags"))
        return {"EndpointConfigArn": created}

    def _check_variants(self, variants: list[Any], shadows: list[Any]) -> None:
        """Unique names, instance-based variants, models that exist (and can shadow)."""
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
            model = self.catalog.get(MODEL, v["ModelName"])
            if member == "ShadowProductionVariants":
                validate_shadow_model(where, v["ModelName"], model.spec)

    def _check_async(self, config: dict[str, Any]) -> None:
        """Async outputs need a place to go, never inside the server's state directory."""
        output = config.get("OutputConfig") or {}
        if not output.get("S3OutputPath"):
            raise ValidationException(
                "AsyncInferenceConfig.OutputConfig.S3OutputPath is required: the location "
                "(s3://, file:// or a path) where the answers of async requests are written."
            )
        home = self.catalog.settings.home
        for member in ("S3OutputPath", "S3FailurePath"):
            if output.get(member):
                where = f"asyncInferenceConfig.outputConfig.{member[0].lower()}{member[1:]}"
                confine(output[member], [], where, [home])
