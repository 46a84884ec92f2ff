"""Cross-field rules of a serverless production variant (ServerlessConfig).

botocore's model checks the ranges (MemorySizeInMB 1024–6144, MaxConcurrency and
ProvisionedConcurrency 1–200); what it cannot say is checked here, in SageMaker's words:
1 GB steps, ProvisionedConcurrency ≤ MaxConcurrency, ServerlessConfig instead of (not
beside) InstanceType/InitialInstanceCount, and the features SageMaker's serverless
inference does not offer (shadow variants, several variants, data capture, multi-model
and multi-container models).
"""

from __future__ import annotations

from typing import Any

from modelhost.control.validation import violation
from modelhost.errors import ValidationException
from modelhost.resources.containers import is_multi_container
from modelhost.resources.serverless import MEMORY_STEP_MB

MEMORY_SIZES_MB = tuple(range(MEMORY_STEP_MB, 6 * MEMORY_STEP_MB + 1, MEMORY_STEP_MB))


def check_serverless_config(
    config: dict[str, Any], index: int, where: str, variant: dict[str, Any]
) -> None:
    """One production variant's ServerlessConfig (`index` is 1-based, as AWS counts)."""
    path = f"productionVariants.{index}.member.serverlessConfig"
    memory = config.get("MemorySizeInMB")
    if memory not in MEMORY_SIZES_MB:
        raise violation(
            memory,
            f"{path}.memorySizeInMB",
            "Member must satisfy enum value set: [" + ", ".join(map(str, MEMORY_SIZES_MB)) + "]",
        )
    provisioned = config.get("ProvisionedConcurrency")
    if provisioned is not None and provisioned > config["MaxConcurrency"]:
        raise ValidationException(
            f"{where}: ProvisionedConcurrency ({provisioned}) must be less than or equal to "
            f"MaxConcurrency ({config['MaxConcurrency']})."
        )
    both = [k for k in ("InstanceType", "InitialInstanceCount") if k in variant]
    if both:
        raise ValidationException(
            f"{where}: specify either ServerlessConfig or {' and '.join(both)}, not both."
        )


def check_serverless_endpoint(p: dict[str, Any], variants: list[Any], shadows: list[Any]) -> None:
    """Endpoint-level rules once any production variant is serverless."""
    if not any(v.get("ServerlessConfig") for v in variants):
        if any(v.get("ServerlessConfig") for v in shadows):
            raise ValidationException(
                "ShadowProductionVariants cannot be serverless (ServerlessConfig)."
            )
        return
    if len(variants) > 1 or shadows:
        raise ValidationException(
            "A serverless endpoint config has exactly one production variant and no "
            "shadow variants (as in SageMaker)."
        )
    if p.get("DataCaptureConfig"):
        raise ValidationException(
            "DataCaptureConfig is not supported for serverless endpoints (as in SageMaker)."
        )


def check_serverless_model(where: str, model_name: str, spec: dict[str, Any]) -> None:
    """Serverless variants serve one single-model container."""
    containers = [spec["PrimaryContainer"]] if "PrimaryContainer" in spec else []
    containers += list(spec.get("Containers") or [])
    if is_multi_container(spec) or any(c.get("Mode") == "MultiModel" for c in containers):
        raise ValidationException(
            f"{where}: model {model_name} is a multi-model or multi-container model; "
            "serverless endpoints serve a single model (as in SageMaker)."
        )


def check_serverless_update(
    name: str, variant: dict[str, Any], item: dict[str, Any]
) -> dict[str, int] | None:
    """UpdateEndpointWeightsAndCapacities on one variant: a serverless variant takes a
    ServerlessUpdateConfig and no instance count; others take no ServerlessUpdateConfig.
    Returns the update to apply (None: none)."""
    current = variant.get("ServerlessConfig")
    update = item.get("ServerlessUpdateConfig")
    if not current:
        if update:
            raise ValidationException(
                f'Variant "{name}" is not serverless; ServerlessUpdateConfig applies to '
                "serverless variants only."
            )
        return None
    if "DesiredInstanceCount" in item:
        raise ValidationException(
            f'Variant "{name}" is serverless: it has no instance count to set (its '
            "instances follow the requests, up to MaxConcurrency); use ServerlessUpdateConfig."
        )
    if not update:
        return None
    merged = {**current, **update}
    provisioned = merged.get("ProvisionedConcurrency")
    if provisioned is not None and provisioned > merged["MaxConcurrency"]:
        raise ValidationException(
            f'Variant "{name}": ProvisionedConcurrency ({provisioned}) must be less than or '
            f"equal to MaxConcurrency ({merged['MaxConcurrency']})."
        )
    return {k: int(v) for k, v in update.items()}
