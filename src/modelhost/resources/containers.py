"""Multi-container models: the execution mode and the containers' host names (no I/O).

A model with `Containers` (instead of `PrimaryContainer`) runs every container on every
instance. `InferenceExecutionConfig.Mode` says how an invocation uses them: `Serial` (an
inference pipeline: each container's answer is the next one's request) or `Direct` (the
request names one container with `TargetContainerHostname`). SageMaker's default, when
the config is absent, is `Serial`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

MAX_CONTAINERS = 15


class ExecutionMode(StrEnum):
    """`InferenceExecutionConfig.Mode`, SageMaker's values."""

    SERIAL = "Serial"
    DIRECT = "Direct"


def is_multi_container(model_spec: dict[str, Any]) -> bool:
    """True when the model runs its `Containers` as one instance of several processes.

    One container without an `InferenceExecutionConfig` is an ordinary single-container
    model (SageMaker treats a one-step pipeline the same way), served as before.
    """
    if model_spec.get("PrimaryContainer"):
        return False
    containers = model_spec.get("Containers") or []
    return len(containers) > 1 or (
        len(containers) == 1 and bool(model_spec.get("InferenceExecutionConfig"))
    )


def execution_mode(model_spec: dict[str, Any]) -> ExecutionMode:
    config = model_spec.get("InferenceExecutionConfig") or {}
    return ExecutionMode(config.get("Mode") or ExecutionMode.SERIAL)


def default_hostname(position: int) -> str:
    """The name given to the container at 0-based `position` when none is specified
    (SageMaker assigns one "based on the position"; its exact form is not documented,
    so modelhost picks one that satisfies the ContainerHostname pattern)."""
    return f"container-{position + 1}"


def container_hostnames(containers: list[dict[str, Any]]) -> tuple[str, ...]:
    """Each container's host name, in order: its `ContainerHostname`, or by position."""
    return tuple(
        str(c.get("ContainerHostname") or default_hostname(i)) for i, c in enumerate(containers)
    )
