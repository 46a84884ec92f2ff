"""Bandit routing as pure decisions: shares, floors, the reward ledger, convergence."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from modelhost.routing.bandit import (
    ArmStats,
    Bandit,
    BanditBook,
    BanditPolicy,
    Outcome,
    RewardLedger,
    Strategy,
    epsilon_greedy_shares,
    thompson_shares,
    with_floor,
)
from modelhost.routing.choose import choose_variant
from modelhost.routing.table import VariantRoute
from modelhost.testing.clock import FakeClock


def test_policy_parsing_names_the_field() -> None:
    policy = BanditPolicy.from_json({"Strategy": "EpsilonGreedy", "Epsilon": 0.2})
    assert policy.strategy == Strategy.EPSILON_GREEDY and policy.epsilon == 0.2
    assert BanditPolicy.from_json(policy.to_json()) == policy
    for body, message in [
        ({"Strategy": "UCB"}, "Strategy must be one of"),
        ({"MinExplorationShare": 0.9}, "MinExplorationShare must be between 0 and 0.5"),
        ({"Epsilon": "x"}, "Epsilon must be a number"),
        ({"Epsilon": True}, "Epsilon must be a number"),
        ({"RewardWindowSeconds": 0}, "RewardWindowSeconds must be greater than 0"),
        ({"Colour": 1}, "Unknown field Colour"),
    ]:
        with pytest.raises(ValueError, match=message):
            BanditPolicy.from_json(body)


def test_thompson_prefers_the_better_arm_and_is_even_without_data() -> None:
    rng = np.random.default_rng(1)
    even = thompson_shares({"A": ArmStats(), "B": ArmStats()}, rng)
    assert even["A"] == pytest.approx(0.5, abs=0.05)
    shares = thompson_shares({"A": ArmStats(100, 100, 30.0), "B": ArmStats(100, 100, 60.0)}, rng)
    assert shares["B"] > 0.99 and sum(shares.values()) == pytest.approx(1.0)
    # Little evidence leaves room for doubt.
    close = thompson_shares({"A": ArmStats(4, 4, 1.0), "B": ArmStats(4, 4, 2.0)}, rng)
    assert 0.5 < close["B"] < 0.95


def test_epsilon_greedy_and_floor() -> None:
    arms = {"A": ArmStats(10, 10, 2.0), "B": ArmStats(10, 10, 8.0), "C": ArmStats()}
    shares = epsilon_greedy_shares(arms, 0.3)
    assert shares == pytest.approx({"A": 0.1, "B": 0.8, "C": 0.1})
    assert epsilon_greedy_shares({"A": ArmStats(), "B": ArmStats()}, 0.1) == {"A": 0.5, "B": 0.5}
    floored = with_floor({"A": 0.0, "B": 1.0}, 0.05)
    assert floored == pytest.approx({"A": 0.05, "B": 0.95})
    assert with_floor({"A": 0.0, "B": 1.0}, 0.5) == {"A": 0.5, "B": 0.5}


def test_ledger_counts_each_reward_once() -> None:
    clock = FakeClock(1000)
    ledger = RewardLedger(clock, capacity=3)
    ledger.observe("i1", "A")
    assert ledger.claim("i1", 60) == (Outcome.ACCEPTED, "A")
    assert ledger.claim("i1", 60) == (Outcome.DUPLICATE, "A")
    assert ledger.claim("nope", 60) == (Outcome.UNKNOWN, None)
    ledger.observe("i2", "B")
    clock.advance(61)
    assert ledger.claim("i2", 60) == (Outcome.LATE, "B")
    # A late reward does not use the id up: it stays late, never accepted.
    assert ledger.claim("i2", 60) == (Outcome.LATE, "B")
    for i in range(3, 7):
        ledger.observe(f"i{i}", "A")
    assert len(ledger) == 3
    assert ledger.claim("i3", 60)[0] == Outcome.UNKNOWN  # forgotten: capacity


def test_bandit_rewards_only_accepted_ones() -> None:
    bandit = Bandit(BanditPolicy(), RewardLedger(FakeClock(1000)))
    bandit.observe("x", "A")
    bandit.reward("x", 1.0)
    bandit.reward("x", 1.0)
    bandit.reward("y", 1.0)
    assert bandit.arms["A"] == ArmStats(1, 1, 1.0)
    assert bandit.outcomes == Counter({"Accepted": 1, "Duplicate": 1, "Unknown": 1})
    restored = Bandit(BanditPolicy(), RewardLedger(FakeClock(1000)))
    restored.load_stats(bandit.stats_json())
    assert restored.arms == bandit.arms and restored.outcomes == bandit.outcomes


@pytest.mark.parametrize(
    "policy",
    [
        BanditPolicy(Strategy.THOMPSON_SAMPLING, min_exploration_share=0.05),
        BanditPolicy(Strategy.EPSILON_GREEDY, min_exploration_share=0.05, epsilon=0.1),
    ],
)
def test_share_converges_to_the_better_variant(policy: BanditPolicy) -> None:
    """2,000 requests, rewards reported in batches of 50: the variant with the higher reward
    rate ends with most of the traffic, the other keeps its exploration floor."""
    rates = {"A": 0.3, "B": 0.5}
    rand = random.Random(7)
    book = BanditBook(FakeClock(1000), np.random.default_rng(7))
    bandit = book.configure("ep", policy)
    chosen: list[str] = []
    pending: list[tuple[str, float]] = []
    for i in range(2000):
        weights = book.weights("ep", ["A", "B"]) or {}
        routes = [VariantRoute(n, w, (object(),)) for n, w in weights.items()]  # type: ignore[arg-type]
        variant = choose_variant(routes, rand.random)
        assert variant is not None
        chosen.append(variant.name)
        bandit.observe(f"id{i}", variant.name)
        pending.append((f"id{i}", 1.0 if rand.random() < rates[variant.name] else 0.0))
        if len(pending) == 50:
            for inference_id, value in pending:
                assert bandit.reward(inference_id, value)[0] == Outcome.ACCEPTED
            pending.clear()
            bandit.recompute(["A", "B"], book.rng)
    last = Counter(chosen[-500:])
    assert last["B"] / 500 > 0.75
    assert bandit.shares["A"] >= 0.05 - 1e-9
    assert last["A"] > 0  # still explored
