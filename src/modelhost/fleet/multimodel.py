"""What a multi-model instance (`PrimaryContainer.Mode = MultiModel`) is started with.

The instance gets SageMaker's `SAGEMAKER_MULTI_MODEL=true` and a memory budget for its
loaded models (`MH_INSTANCE_MODEL_CACHE_BYTES`): the `model_cache_bytes` setting, or half of
the instance type's memory, never more than half of this machine's (instances are
processes here, so an `ml.r5.12xlarge` does not get 192 GiB of a laptop). A budget in
the container's own Environment wins, so one model can be given a different one.

The instance fetches each model it is asked to load itself (`container.model_source`), so
it also gets the artifact store's configuration: the shared artifact cache in the state
directory, the S3 endpoint and region, the allowed data prefixes and the unpack limits.
These come from the gateway's settings and win over the container's Environment (a model
must not widen its own allowed prefixes or limits).
"""

from __future__ import annotations

import json
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
        **artifact_store_env(settings),
    }


def artifact_store_env(settings: Settings) -> dict[str, str]:
    """The instance variables (`container.config`) that let it read the artifact store.

    Instances never inherit the gateway's environment (`fleet/environment.py`), so one that
    fetches `s3://` objects gets the endpoint, the region and, only when the
    `s3_access_key_id`/`s3_secret_access_key` settings are set, credentials, the last two
    under boto3's own names so any S3 client finds them.
    """
    out = {
        "MH_INSTANCE_ARTIFACT_CACHE_DIR": str(settings.artifact_cache_dir),
        # The shared cache is bounded: the instance leases the models it loads.
        "MH_INSTANCE_ARTIFACT_CACHE_BYTES": str(settings.artifact_cache_bytes),
        "MH_INSTANCE_ARTIFACT_MAX_UNPACKED_BYTES": str(settings.artifact_max_unpacked_bytes),
        "MH_INSTANCE_ARTIFACT_MAX_RATIO": repr(float(settings.artifact_max_ratio)),
        "MH_INSTANCE_ARTIFACT_MAX_MEMBERS": str(settings.artifact_max_members),
        "MH_INSTANCE_S3_REGION": settings.s3_region or settings.region,
        "AWS_DEFAULT_REGION": settings.s3_region or settings.region,
    }
    if settings.s3_endpoint_url:
        out["MH_INSTANCE_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        out["AWS_ACCESS_KEY_ID"] = settings.s3_access_key_id
        out["AWS_SECRET_ACCESS_KEY"] = settings.s3_secret_access_key
    if settings.allowed_data_prefixes:
        out["MH_INSTANCE_ALLOWED_DATA_PREFIXES"] = json.dumps(list(settings.allowed_data_prefixes))
    return out


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
