"""Model-aware instance picking for multi-model endpoints, as a pure function.

SageMaker routes a TargetModel to an instance that already has it loaded, and loads a
heavily used model on more instances. Here: among the instances that hold the model
(per the gateway's record, `ModelTarget.models`), the least busy one wins unless even it
has `busy_outstanding` or more requests in flight; then the least-loaded instance of the
whole variant is picked, loads the model as well, and from then on shares its traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from modelhost.routing.choose import Pickable, Rand, pick_instance


class ModelTarget(Pickable, Protocol):
    """An instance with the set of TargetModels it is known to hold."""

    models: set[str]


M = TypeVar("M", bound=ModelTarget)


def pick_for_model(
    instances: Sequence[M],
    model: str,
    rand: Rand,
    busy_outstanding: int,
    exclude: frozenset[str] = frozenset(),
) -> M | None:
    """The instance to send a request for `model` to; None when every one is excluded."""
    holders = [
        i
        for i in instances
        if model in i.models and i.instance_id not in exclude and i.outstanding < busy_outstanding
    ]
    return pick_instance(holders or instances, rand, exclude)
