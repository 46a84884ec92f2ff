"""CreateModel rules for multi-model containers (`Mode = MultiModel`).

SageMaker's: the ModelDataUrl is the prefix every TargetModel is read under, so it is
required, and ModelDataSource cannot be used with multi-model endpoints.
"""

from __future__ import annotations

from typing import Any

from modelhost.errors import ValidationException


def check_multi_model(params: dict[str, Any]) -> None:
    """Refuse a multi-model container that names no prefix (ValidationException)."""
    containers = [("PrimaryContainer", params.get("PrimaryContainer") or {})]
    containers += [(f"Containers.{i + 1}", c) for i, c in enumerate(params.get("Containers") or [])]
    for where, container in containers:
        if container.get("Mode") != "MultiModel":
            continue
        if container.get("ModelDataSource"):
            raise ValidationException(
                f"{where}: ModelDataSource cannot be used with Mode MultiModel; give the "
                "prefix of the models as ModelDataUrl."
            )
        if not container.get("ModelDataUrl"):
            raise ValidationException(
                f"{where}: Mode MultiModel needs ModelDataUrl, the S3 prefix (or local "
                "directory) that holds the models (TargetModel is read under it)."
            )
