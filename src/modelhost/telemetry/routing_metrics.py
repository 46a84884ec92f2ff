"""Routing gauges read at scrape time: the traffic split in effect and bandit rewards.

A collector rather than live metrics because the values already exist elsewhere (the
routing snapshot, the bandit counts); reading them when Prometheus asks costs nothing on
the request path. Telemetry sits below routing, so the gateway plugs in plain rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LABELS = ["EndpointName", "VariantName"]


@dataclass(frozen=True)
class WeightRow:
    endpoint: str
    variant: str
    share: float  # of the endpoint's traffic, 0..1


@dataclass(frozen=True)
class RewardRow:
    endpoint: str
    variant: str
    rewards: int
    reward_sum: float


@dataclass(frozen=True)
class OutcomeRow:
    endpoint: str
    outcome: str
    count: int


class RoutingCollector(Collector):
    """Yields VariantWeight, BanditRewards, BanditRewardSum and BanditRewardOutcomes."""

    def __init__(self) -> None:
        self.weights: Callable[[], Iterable[WeightRow]] = lambda: ()
        self.rewards: Callable[[], Iterable[RewardRow]] = lambda: ()
        self.outcomes: Callable[[], Iterable[OutcomeRow]] = lambda: ()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        weight = GaugeMetricFamily(
            "VariantWeight", "Share of the endpoint's traffic routed to the variant.", labels=LABELS
        )
        for w in self.weights():
            weight.add_metric([w.endpoint, w.variant], w.share)
        yield weight
        rewards = CounterMetricFamily(
            "BanditRewards", "Rewards accepted for the variant's invocations.", labels=LABELS
        )
        reward_sum = CounterMetricFamily(
            "BanditRewardSum", "Sum of the rewards accepted for the variant.", labels=LABELS
        )
        for r in self.rewards():
            rewards.add_metric([r.endpoint, r.variant], r.rewards)
            reward_sum.add_metric([r.endpoint, r.variant], r.reward_sum)
        yield rewards
        yield reward_sum
        outcomes = CounterMetricFamily(
            "BanditRewardOutcomes",
            "Reported rewards by outcome (Accepted, Duplicate, Late, Unknown).",
            labels=["EndpointName", "Outcome"],
        )
        for o in self.outcomes():
            outcomes.add_metric([o.endpoint, o.outcome], o.count)
        yield outcomes
