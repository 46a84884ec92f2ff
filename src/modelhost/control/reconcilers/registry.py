"""The reconcilers the controller runs, in order, on every pass.

Adding a concern (the autoscaler, ...) is a module with a class that takes the
`ControlState` and has an idempotent `step(endpoints)`, plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable

from modelhost.control.reconcilers.bandits import BanditReconciler
from modelhost.control.reconcilers.base import ControlState, Reconciler
from modelhost.control.reconcilers.capacity import CapacityReconciler
from modelhost.control.reconcilers.endpoints import EndpointReconciler
from modelhost.control.reconcilers.rollouts import RolloutReconciler
from modelhost.control.reconcilers.weights import WeightReconciler

# Bandits first: a route published later in the pass already has the bandit's weights.
RECONCILERS: list[Callable[[ControlState], Reconciler]] = [
    BanditReconciler,
    EndpointReconciler,
    WeightReconciler,
    RolloutReconciler,
    # Instance counts the autoscaler set (desired state), applied while InService.
    CapacityReconciler,
]


def build(state: ControlState) -> list[Reconciler]:
    return [make(state) for make in RECONCILERS]
