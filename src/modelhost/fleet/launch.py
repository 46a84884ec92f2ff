"""Turn a model's container definition into a LaunchSpec for an instance process."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelhost.fleet.byoc import ByocError, supervisor_argv
from modelhost.fleet.images import builtin_runtime_for_image
from modelhost.fleet.instance import LaunchSpec, NodeArtifact
from modelhost.fleet.multimodel import MULTI_MODEL, check_prefix, multi_model_env
from modelhost.resources.gpus import INSTANCE_TYPE_ENV
from modelhost.settings import Settings

log = logging.getLogger("modelhost.fleet")


class LaunchError(Exception):
    """The model cannot be launched here; the message becomes the FailureReason."""


# Instance variables that were `MODELHOST_*` before the instance got its own prefix
# (`MH_INSTANCE_*`, container/config.py). Models stored with the old names in their
# Environment keep working: the old name is renamed at launch, with a warning.
LEGACY_INSTANCE_VARIABLES = (
    "RUNTIME",
    "BATCHING",
    "BATCH_MAX_ROWS",
    "BATCH_MAX_WAIT_MS",
    "MODEL_CACHE_BYTES",
    "ONNX_OUTPUT",
    "PIP_TIMEOUT_S",
    "PACKAGES_DIR",
    "LOG_LEVEL",
)


def model_environment(environment: Mapping[str, Any], model_name: str) -> dict[str, str]:
    """A container's `Environment` as the instance's env, legacy names renamed."""
    env = {str(k): str(v) for k, v in environment.items()}
    for suffix in LEGACY_INSTANCE_VARIABLES:
        old, new = f"MODELHOST_{suffix}", f"MH_INSTANCE_{suffix}"
        if old in env:
            value = env.pop(old)
            env.setdefault(new, value)
            log.warning("model %s: Environment %s is now %s; rename it", model_name, old, new)
    return env


def launch_fingerprint(
    model_name: str, model_spec: Mapping[str, Any], instance_type: str | None
) -> str:
    """What an instance runs, as a digest: the model (its name and containers: image,
    artifact, environment) and the instance type. Paths on this gateway are left out, so
    another gateway computes the same value for the same variant."""
    doc = json.dumps([model_name, model_spec, instance_type], sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:24]


def _builtin_env(
    settings: Settings, runtime: str, env: dict[str, str], instance_type: str | None
) -> dict[str, str]:
    """What a built-in runtime's instance gets from the settings (the model's own
    OMP_NUM_THREADS wins)."""
    return {
        "MH_INSTANCE_RUNTIME": runtime,
        "MH_INSTANCE_LOG_LEVEL": settings.log_level,
        # Script-mode requirements.txt installs, cached by digest, shared by instances.
        "MH_INSTANCE_PACKAGES_DIR": str(settings.home / "packages"),
        # pip must give up (with its error as the FailureReason) before the startup
        # deadline turns the same failure into a bare timeout.
        "MH_INSTANCE_PIP_TIMEOUT_S": str(max(30, int(settings.instance_startup_timeout_s) - 20)),
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", str(settings.instance_threads)),
        # The compiled tier (container/compile_tier.py): the model's Environment may turn
        # it on or off for itself; compiled forms are shared by the machine's instances.
        "MH_INSTANCE_COMPILE_TREES": env.get(
            "MH_INSTANCE_COMPILE_TREES", settings.compile_tree_models
        ),
        "MH_INSTANCE_COMPILE_CACHE_DIR": str(settings.home / "compiled"),
        # Prints of a user's script reach the instance log (CloudWatch Logs) line by line,
        # as SageMaker's framework images set it.
        "PYTHONUNBUFFERED": env.get("PYTHONUNBUFFERED", "1"),
        # The provider pins GPU instance types to a GPU (resources/gpus.py).
        INSTANCE_TYPE_ENV: instance_type or "",
    }


def primary_container(model_spec: dict[str, Any], model_name: str) -> dict[str, Any]:
    containers = model_spec.get("Containers") or []
    if "PrimaryContainer" in model_spec:
        return dict(model_spec["PrimaryContainer"])
    if len(containers) == 1:
        return dict(containers[0])
    if len(containers) > 1:
        raise LaunchError(
            f"Model {model_name} has {len(containers)} containers; multi-container endpoints "
            "and inference pipelines are not supported by this modelhost version. Use a "
            "single PrimaryContainer."
        )
    raise LaunchError(f"Model {model_name} has neither PrimaryContainer nor Containers.")


def build_launch_spec(
    *,
    settings: Settings,
    endpoint_name: str,
    variant_name: str,
    model_name: str,
    model_spec: dict[str, Any],
    fetch: Callable[[str], Path],
    fetch_source: Callable[[dict[str, Any]], Path],
    instance_type: str | None = None,
    node_fetch: bool = False,
) -> LaunchSpec:
    """Resolve the image to a runtime and the artifact to a local directory.

    `fetch`/`fetch_source` come from the artifact store; they may download and unpack,
    so call this function off the event loop. With `node_fetch` (fleet 'ray') the nodes
    fetch it: the spec says where it is (`node_artifact`).
    """
    container = primary_container(model_spec, model_name)
    # Multi-model: ModelDataUrl is a prefix; the gateway fetches each TargetModel on demand.
    prefix = container.get("ModelDataUrl") if container.get("Mode") == MULTI_MODEL else None
    if prefix is not None and (problem := check_prefix(prefix)) is not None:
        raise LaunchError(f"Model {model_name}: {problem}")
    image = container.get("Image")
    runtime = builtin_runtime_for_image(image)
    node_artifact = _node_artifact(settings, container, prefix) if node_fetch else None
    model_dir = (
        _empty_model_dir(settings)
        if node_artifact is not None
        else _model_dir(settings, container, prefix, fetch, fetch_source)
    )
    env = model_environment(container.get("Environment") or {}, model_name)
    if prefix is not None:
        env.update(multi_model_env(settings, instance_type, env))
    common: dict[str, Any] = {
        "endpoint_name": endpoint_name,
        "variant_name": variant_name,
        "model_name": model_name,
        "env": env,
        "model_dir": model_dir,
        "log_dir": settings.logs_dir / endpoint_name / variant_name,
        "model_data_prefix": prefix,
        "node_artifact": node_artifact,
    }
    if runtime is None:
        assert image is not None  # no image means "auto", a built-in
        try:
            # A `command:` server's program may ship in its artifact: with the artifact
            # fetched on the node, the node resolves and checks it (fleet/ray/artifacts.py).
            on_node = node_artifact is not None and node_artifact.location is not None
            argv = supervisor_argv(image, model_dir, sorted(env), model_on_node=on_node)
        except ByocError as exc:
            raise LaunchError(f"Model {model_name}: {exc}") from exc
        return LaunchSpec(argv=argv, builtin=False, **common)
    env.update(_builtin_env(settings, runtime, env, instance_type))
    return LaunchSpec(argv=[sys.executable, "-m", "modelhost.container"], **common)


def _model_dir(
    settings: Settings,
    container: dict[str, Any],
    prefix: str | None,
    fetch: Callable[[str], Path],
    fetch_source: Callable[[dict[str, Any]], Path],
) -> Path:
    """The local directory of the container's artifact; an empty one when it has none (a
    multi-model instance fetches its models itself, as does a server with no artifact)."""
    if container.get("ModelDataUrl") and prefix is None:
        return fetch(container["ModelDataUrl"])
    if container.get("ModelDataSource", {}).get("S3DataSource"):
        return fetch_source(container["ModelDataSource"]["S3DataSource"])
    return _empty_model_dir(settings)


def _empty_model_dir(settings: Settings) -> Path:
    model_dir = settings.home / "empty-model"
    model_dir.mkdir(parents=True, exist_ok=True)
    return model_dir


def _node_artifact(
    settings: Settings, container: dict[str, Any], prefix: str | None
) -> NodeArtifact:
    """Where the node finds the container's artifact (none for a multi-model instance,
    which fetches each model itself, or a server without one)."""
    store = node_store_config(settings)
    source = container.get("ModelDataSource", {}).get("S3DataSource")
    if container.get("ModelDataUrl") and prefix is None:
        return NodeArtifact(model_data_url=container["ModelDataUrl"], store=store)
    if source:
        return NodeArtifact(model_data_source=dict(source), store=store)
    return NodeArtifact(store=store)


def node_store_config(settings: Settings) -> dict[str, Any]:
    """The artifact store's configuration a node fetches with: the gateway's S3 endpoint,
    region and unpack limits, the node cache's directory and budget, and the
    `s3_access_key_id`/`s3_secret_access_key` settings when set (else the node's own
    credentials: its environment, profile or instance role). Plain values: it travels to
    the node."""
    keys = (settings.s3_access_key_id, settings.s3_secret_access_key)
    return {
        "cache_dir": settings.ray_node_cache_dir,
        "cache_bytes": settings.ray_node_cache_bytes,
        "s3_endpoint_url": settings.s3_endpoint_url,
        "s3_region": settings.s3_region or settings.region,
        "s3_credentials": list(keys) if all(keys) else None,
        "max_unpacked_bytes": settings.artifact_max_unpacked_bytes,
        "max_ratio": float(settings.artifact_max_ratio),
        "max_members": settings.artifact_max_members,
    }
