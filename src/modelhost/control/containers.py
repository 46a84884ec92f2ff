"""CreateModel rules for multi-container models that botocore's model cannot express.

botocore's shapes already bound `Containers` to 15 items, the `ContainerHostname`
pattern and the `Mode` enum (see validation.py); the cross-field rules live here, each
error naming the member and the rule:

- `PrimaryContainer` and `Containers` exclude each other;
- `InferenceExecutionConfig` needs `Containers`;
- host names are given for every container or for none (SageMaker's rule: "If you
  specify a value for the ContainerHostName for any ContainerDefinition that is part of
  an inference pipeline, you must specify a value ... of every ContainerDefinition"),
  and are unique within the model;
- `Mode: MultiModel` is not available inside a multi-container model here.
"""

from __future__ import annotations

from typing import Any

from modelhost.errors import ValidationException
from modelhost.resources.containers import (
    container_hostnames,
    execution_mode,
    is_multi_container,
)


def validate_model_containers(p: dict[str, Any]) -> None:
    """Raise ValidationException for a CreateModel request that breaks a rule above."""
    name = p.get("ModelName", "")
    containers = p.get("Containers") or []
    if p.get("PrimaryContainer") and containers:
        raise ValidationException(
            f"Model {name}: specify either PrimaryContainer or Containers, not both "
            "(Containers is for inference pipelines and multi-container endpoints)."
        )
    if p.get("InferenceExecutionConfig") and not containers:
        raise ValidationException(
            f"Model {name}: InferenceExecutionConfig applies only to a model with Containers; "
            "remove it or list the containers in Containers."
        )
    if not is_multi_container(p):
        return
    named = [i for i, c in enumerate(containers, start=1) if c.get("ContainerHostname")]
    if named and len(named) != len(containers):
        unnamed = [i for i in range(1, len(containers) + 1) if i not in named]
        raise ValidationException(
            f"Model {name}: ContainerHostname is set for some containers but not for "
            f"Containers.{unnamed[0]}; give every container a ContainerHostname or none "
            "(then they are named by position: container-1, container-2, ...)."
        )
    seen: dict[str, int] = {}
    for i, host in enumerate(container_hostnames(containers), start=1):
        key = host.lower()  # host names are DNS names: case does not distinguish them
        if key in seen:
            raise ValidationException(
                f"Model {name}: ContainerHostname '{host}' of Containers.{i} is already used "
                f"by Containers.{seen[key]}; host names must be unique within a model."
            )
        seen[key] = i
    for i, c in enumerate(containers, start=1):
        if c.get("Mode") == "MultiModel":
            raise ValidationException(
                f"Model {name}: Containers.{i} has Mode MultiModel, which this modelhost "
                f"version does not support inside a {execution_mode(p)} multi-container "
                "model; use Mode SingleModel."
            )


def validate_shadow_model(where: str, model_name: str, model_spec: dict[str, Any]) -> None:
    """Shadow copies go to one process's /invocations; a multi-container model has
    several, so it cannot be a shadow variant's model (yet)."""
    if is_multi_container(model_spec):
        raise ValidationException(
            f"{where}: model {model_name} has several containers; shadow variants support "
            "single-container models only in this modelhost version."
        )
