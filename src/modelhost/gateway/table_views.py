"""Views of the controller's routing table for the telemetry: the instances the sampler
reads and the routing metrics' weight, reward and outcome rows (kept out of app.py)."""

from __future__ import annotations

from functools import partial

from modelhost.control.controller import Controller
from modelhost.routing.table import ShadowRoute, VariantRoute
from modelhost.telemetry.instance_sampler import InstanceRef
from modelhost.telemetry.routing_metrics import OutcomeRow, RewardRow, RoutingCollector, WeightRow


def feed_routing_metrics(routing: RoutingCollector, controller: Controller) -> None:
    """Point the routing metrics at this controller's table and bandits."""
    routing.weights = partial(weight_rows, controller)
    routing.rewards = partial(reward_rows, controller)
    routing.outcomes = partial(outcome_rows, controller)


def instance_refs(controller: Controller) -> list[InstanceRef]:
    """The instances the sampler reads, from the routing table (serving and shadow)."""
    refs = []
    for route in controller.table.endpoints.values():
        variants: list[VariantRoute | ShadowRoute] = [*route.variants, *route.shadows]
        for v in variants:
            for inst in v.instances:
                pid, instance_id = getattr(inst, "pid", None), getattr(inst, "instance_id", "")
                if isinstance(pid, int):
                    refs.append(InstanceRef(route.name, v.name, instance_id, (pid,)))
    return refs


def weight_rows(controller: Controller) -> list[WeightRow]:
    rows = []
    for route in controller.table.endpoints.values():
        serving = [v for v in route.variants if v.instances]
        total = sum(v.weight for v in serving)
        for v in serving:
            rows.append(WeightRow(route.name, v.name, v.weight / total if total else 0.0))
    return rows


def reward_rows(controller: Controller) -> list[RewardRow]:
    return [
        RewardRow(endpoint, variant, arm.rewards, arm.reward_sum)
        for endpoint, bandit in controller.bandits.items()
        for variant, arm in bandit.arms.items()
    ]


def outcome_rows(controller: Controller) -> list[OutcomeRow]:
    return [
        OutcomeRow(endpoint, outcome, count)
        for endpoint, bandit in controller.bandits.items()
        for outcome, count in bandit.outcomes.items()
    ]
