"""A transform job's instances: environment, start, concurrency and health.

The job's instances come from the same `FleetManager` as an endpoint's, so every
runtime and every user server works in batch; the job adds SageMaker's batch
environment to the model's container definition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

from modelhost.fleet.http1 import HTTP1Pool
from modelhost.fleet.manager import FleetManager
from modelhost.fleet.variant import VariantFleet


class JobFailed(Exception):
    """The job cannot go on (no instance, unreadable input); the text is the FailureReason."""


def job_environment(
    request: dict[str, Any], model_spec: dict[str, Any], instances: int
) -> dict[str, str]:
    """The job's `Environment` plus SageMaker's batch variables (set only when given, as
    SageMaker does) and one worker per core unless the model or the job chose."""
    env = {str(k): str(v) for k, v in (request.get("Environment") or {}).items()}
    container_env = (model_spec.get("PrimaryContainer") or {}).get("Environment") or {}
    if "SAGEMAKER_MODEL_SERVER_WORKERS" not in env | container_env:
        # All cores busy: the job's instances share this machine's cores between them
        # (a user's server may ignore this; built-in instances fork that many workers).
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(max(1, (os.cpu_count() or 1) // instances))
    env["SAGEMAKER_BATCH"] = "true"
    env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(request.get("MaxPayloadInMB", 6))
    if "BatchStrategy" in request:
        single = request["BatchStrategy"] == "SingleRecord"
        env["SAGEMAKER_BATCH_STRATEGY"] = "SINGLE_RECORD" if single else "MULTI_RECORD"
    if request.get("MaxConcurrentTransforms"):
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(request["MaxConcurrentTransforms"])
    return env


def with_environment(model_spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """The model's container definition with the job's environment added (the job's
    values win, as SageMaker documents for CreateTransformJob's Environment)."""
    spec = dict(model_spec)
    if "PrimaryContainer" in spec:
        container = dict(spec["PrimaryContainer"])
        container["Environment"] = {**(container.get("Environment") or {}), **env}
        spec["PrimaryContainer"] = container
    if "Containers" in spec:
        spec["Containers"] = [
            {**c, "Environment": {**(c.get("Environment") or {}), **env}}
            for c in spec["Containers"]
        ]
    return spec


async def start_fleet(
    fleets: FleetManager,
    fleet_name: str,
    model_name: str,
    model_spec: dict[str, Any],
    instances: int,
    instance_type: str | None = None,
) -> VariantFleet:
    """Start `instances` instances and wait until they answer /ping; JobFailed if not."""
    try:
        spec = await fleets.launch_spec(
            fleet_name, "instances", model_name, model_spec, instance_type, groups=False
        )
    except Exception as exc:
        raise JobFailed(f"Model {model_name} cannot be started: {exc}") from exc
    await fleets.warm(spec)  # instances forked from the runtime's zygote (fleet/zygote.py)
    fleet = fleets.fleet(spec, instances)
    try:
        await fleet.start()
    except Exception as exc:
        await fleets.stop_fleet(fleet, drain_s=0)
        raise JobFailed(f"The job's instances did not start: {exc}") from exc
    return fleet


async def concurrency(request: dict[str, Any], fleet: VariantFleet, pool: HTTP1Pool) -> int:
    """Requests in flight per instance: MaxConcurrentTransforms, else what the
    container's /execution-parameters says, else 1 (SageMaker's precedence)."""
    given = int(request.get("MaxConcurrentTransforms") or 0)
    if given:
        return given
    for inst in fleet.serving()[:1]:
        with contextlib.suppress(Exception):
            # Its address, not a loopback port: a Ray-placed instance is on another host.
            status, _, body = await pool.request(
                inst.address, b"GET", b"/execution-parameters", [], b"", 5.0
            )
            if status == 200:
                return max(1, int(json.loads(body).get("MaxConcurrentTransforms", 1)))
    return 1


async def keep_healthy(fleet: VariantFleet, interval_s: float) -> None:
    """Health-check the job's instances; dead ones are replaced (`VariantFleet.check`)."""
    while True:
        await asyncio.sleep(interval_s)
        with contextlib.suppress(Exception):
            await fleet.check()
