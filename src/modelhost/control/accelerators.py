"""Accelerators on production variants: Elastic Inference is refused with its alternatives."""

from __future__ import annotations

from typing import Any

from modelhost.errors import ValidationException


def check_accelerators(params: dict[str, Any]) -> None:
    """AcceleratorType (Elastic Inference) is refused with the alternatives: AWS retired the
    service, and nothing here could attach one."""
    for i, variant in enumerate(params.get("ProductionVariants") or [], 1):
        accelerator = variant.get("AcceleratorType") if isinstance(variant, dict) else None
        if accelerator:
            raise ValidationException(
                f"ProductionVariants[{i}].AcceleratorType {accelerator}: Amazon Elastic "
                "Inference is retired (AWS no longer offers it) and modelhost does not provide "
                "it. Remove AcceleratorType and use a GPU instance type (e.g. ml.g4dn.xlarge, "
                "ml.g5.xlarge) or compile the model (CreateCompilationJob) and serve it on a "
                "CPU instance type."
            )
