"""What a multi-model instance (`PrimaryContainer.Mode = MultiModel`) is started with.

The instance gets SageMaker's `SAGEMAKER_MULTI_MODEL=true` and a memory budget for its
loaded models (`MH_INSTANCE_MODEL_CACHE_BYTES`): the `model_cache_bytes` setting, or half of
the instance type's memory, never more than half of this machine's (instances are
processes here, so an `ml.r5.12xlarge` does not get 192 GiB of a laptop). A budget in
the container's own Environment wins, so one model can be given a different one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from modelhost.resources.instance_types import instance_memory_bytes
from modelhost.settings import Settings

MULTI_MODEL = "MultiModel"


def machine_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4 * 1024**3


def model_cache_budget_bytes(
    setting_bytes: int, instance_type: str | None, machine_bytes: int
) -> int:
    """The budget of one multi-model instance (see the module docstring)."""
    if setting_bytes > 0:
        return setting_bytes
    typed = instance_memory_bytes(instance_type)
    memory = machine_bytes if typed is None else min(typed, machine_bytes)
    return max(memory // 2, 1)


def multi_model_env(
    settings: Settings, instance_type: str | None, env: dict[str, str]
) -> dict[str, str]:
    """Environment variables to add for a multi-model instance (user values win)."""
    budget = model_cache_budget_bytes(
        settings.model_cache_bytes, instance_type, machine_memory_bytes()
    )
    return {
        "SAGEMAKER_MULTI_MODEL": "true",
        "MH_INSTANCE_MODEL_CACHE_BYTES": env.get("MH_INSTANCE_MODEL_CACHE_BYTES", str(budget)),
    }


def check_prefix(prefix: str) -> str | None:
    """Why a local multi-model prefix cannot serve (None when it can, or it is remote)."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", prefix) and not prefix.startswith("file://"):
        return None  # s3:// and others are read per TargetModel
    path = Path(prefix.removeprefix("file://")).expanduser()
    if not path.is_dir():
        return (
            f"ModelDataUrl {prefix} is not a directory; with Mode MultiModel it is the folder "
            "(or S3 prefix) holding the models"
        )
    return None
