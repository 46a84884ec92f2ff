"""Multi-armed bandit routing: variant weights that follow the rewards callers report.

An endpoint with a bandit policy keeps, per variant (arm), how many invocations it served
and the rewards reported for them. Every invocation carries an InferenceId (the caller's,
or one the gateway makes up and returns); `POST`ing a reward in [0, 1] for an id credits the
variant that answered it, once. Rewards for ids never seen (or forgotten), seen too long
ago, or already rewarded are counted by outcome and otherwise ignored, so retries and late
batches cannot skew the weights.

Weights are recomputed from the statistics whenever rewards arrive or the variants change:

- Thompson sampling: each variant's share is the probability that its reward rate is the
  best, under Beta(1 + rewards, 1 + misses) posteriors, estimated by sampling. Sharing
  traffic by that probability is what per-request Thompson sampling does on average, and
  keeps the per-request choice a plain weighted pick (`choose_variant`).
- Epsilon-greedy: the variant with the best mean reward gets 1 - epsilon, the others split
  epsilon; before any reward every variant gets the same share.

Both keep at least `MinExplorationShare` of traffic on every variant, so a variant that was
unlucky early can still recover. All randomness comes from an injected numpy Generator.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

THOMPSON_SAMPLES = 4000
LEDGER_CAPACITY = 1_000_000


class Strategy(StrEnum):
    THOMPSON_SAMPLING = "ThompsonSampling"
    EPSILON_GREEDY = "EpsilonGreedy"


class Outcome(StrEnum):
    """What happened to one reported reward."""

    ACCEPTED = "Accepted"
    DUPLICATE = "Duplicate"  # the id was rewarded before; not counted again
    LATE = "Late"  # the invocation is older than RewardWindowSeconds
    UNKNOWN = "Unknown"  # no invocation with this id (or forgotten after a restart)


@dataclass(frozen=True)
class BanditPolicy:
    strategy: Strategy = Strategy.THOMPSON_SAMPLING
    min_exploration_share: float = 0.05
    epsilon: float = 0.1
    reward_window_s: float = 3600.0

    def to_json(self) -> dict[str, Any]:
        return {
            "Strategy": self.strategy.value,
            "MinExplorationShare": self.min_exploration_share,
            "Epsilon": self.epsilon,
            "RewardWindowSeconds": self.reward_window_s,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> BanditPolicy:
        """Parse and validate the native `RoutingConfig`; ValueError names field and rule."""
        known = {"Strategy", "MinExplorationShare", "Epsilon", "RewardWindowSeconds"}
        extra = sorted(set(body) - known)
        if extra:
            raise ValueError(f"Unknown field {extra[0]}; expected one of {sorted(known)}.")
        try:
            strategy = Strategy(body.get("Strategy", Strategy.THOMPSON_SAMPLING))
        except ValueError:
            raise ValueError(
                f"Strategy must be one of {[s.value for s in Strategy]}, "
                f"not {body.get('Strategy')!r}."
            ) from None
        policy = cls(
            strategy,
            _number(body, "MinExplorationShare", 0.05),
            _number(body, "Epsilon", 0.1),
            _number(body, "RewardWindowSeconds", 3600.0),
        )
        if not 0 <= policy.min_exploration_share <= 0.5:
            raise ValueError("MinExplorationShare must be between 0 and 0.5.")
        if not 0 <= policy.epsilon <= 1:
            raise ValueError("Epsilon must be between 0 and 1.")
        if not policy.reward_window_s > 0:
            raise ValueError("RewardWindowSeconds must be greater than 0.")
        return policy


def _number(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number.")
    return float(value)


@dataclass
class ArmStats:
    """One variant's counts: invocations served, rewards received and their sum."""

    invocations: int = 0
    rewards: int = 0
    reward_sum: float = 0.0

    @property
    def mean(self) -> float | None:
        return self.reward_sum / self.rewards if self.rewards else None


def thompson_shares(
    arms: dict[str, ArmStats], rng: np.random.Generator, samples: int = THOMPSON_SAMPLES
) -> dict[str, float]:
    """P(arm has the best reward rate) under Beta posteriors, by Monte Carlo."""
    names = list(arms)
    if not names:
        return {}
    alpha = np.array([1.0 + arms[n].reward_sum for n in names])
    beta = np.array([1.0 + arms[n].rewards - arms[n].reward_sum for n in names])
    draws = rng.beta(alpha, beta, size=(samples, len(names)))
    wins = np.bincount(np.argmax(draws, axis=1), minlength=len(names))
    return {n: float(w) / samples for n, w in zip(names, wins, strict=True)}


def epsilon_greedy_shares(arms: dict[str, ArmStats], epsilon: float) -> dict[str, float]:
    """1 - epsilon to the best mean reward (ties split it), epsilon spread over all."""
    if not arms:
        return {}
    means = {n: a.mean for n, a in arms.items()}
    scored = {n: m for n, m in means.items() if m is not None}
    if not scored:
        return {n: 1.0 / len(arms) for n in arms}
    top = max(scored.values())
    best = [n for n, m in scored.items() if m == top]
    return {
        n: epsilon / len(arms) + ((1.0 - epsilon) / len(best) if n in best else 0.0) for n in arms
    }


def with_floor(shares: dict[str, float], min_share: float) -> dict[str, float]:
    """Give every arm at least `min_share`, scaling the rest to keep the sum at 1."""
    k = len(shares)
    if not k:
        return {}
    if min_share * k >= 1.0:
        return {n: 1.0 / k for n in shares}
    total = sum(shares.values()) or 1.0
    return {n: min_share + (1.0 - k * min_share) * s / total for n, s in shares.items()}


def compute_shares(
    policy: BanditPolicy, arms: dict[str, ArmStats], rng: np.random.Generator
) -> dict[str, float]:
    if policy.strategy == Strategy.THOMPSON_SAMPLING:
        raw = thompson_shares(arms, rng)
    else:
        raw = epsilon_greedy_shares(arms, policy.epsilon)
    return with_floor(raw, policy.min_exploration_share)


@dataclass
class _Seen:
    variant: str
    at_s: float
    rewarded: bool = False


class RewardLedger:
    """Which variant answered which InferenceId, and whether it was rewarded.

    Bounded: beyond `capacity` ids the oldest are forgotten (their rewards then count as
    Unknown), so memory stays flat however many invocations never get a reward."""

    def __init__(self, clock: Callable[[], float], capacity: int = LEDGER_CAPACITY) -> None:
        self.clock = clock
        self.capacity = capacity
        self._ids: OrderedDict[str, _Seen] = OrderedDict()

    def observe(self, inference_id: str, variant: str) -> None:
        self._ids[inference_id] = _Seen(variant, self.clock())
        self._ids.move_to_end(inference_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def claim(self, inference_id: str, window_s: float) -> tuple[Outcome, str | None]:
        seen = self._ids.get(inference_id)
        if seen is None:
            return Outcome.UNKNOWN, None
        if seen.rewarded:
            return Outcome.DUPLICATE, seen.variant
        if self.clock() - seen.at_s > window_s:
            return Outcome.LATE, seen.variant
        seen.rewarded = True
        return Outcome.ACCEPTED, seen.variant

    def __len__(self) -> int:
        return len(self._ids)


@dataclass
class Bandit:
    """The bandit state of one endpoint."""

    policy: BanditPolicy
    ledger: RewardLedger
    arms: dict[str, ArmStats] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    shares: dict[str, float] = field(default_factory=dict)

    def observe(self, inference_id: str, variant: str) -> None:
        self.arms.setdefault(variant, ArmStats()).invocations += 1
        self.ledger.observe(inference_id, variant)

    def reward(self, inference_id: str, value: float) -> tuple[Outcome, str | None]:
        outcome, variant = self.ledger.claim(inference_id, self.policy.reward_window_s)
        self.outcomes[outcome.value] += 1
        if outcome == Outcome.ACCEPTED and variant is not None:
            arm = self.arms.setdefault(variant, ArmStats())
            arm.rewards += 1
            arm.reward_sum += value
        return outcome, variant

    def recompute(self, variants: Iterable[str], rng: np.random.Generator) -> dict[str, float]:
        arms = {v: self.arms.get(v) or ArmStats() for v in variants}
        self.shares = compute_shares(self.policy, arms, rng)
        return self.shares

    def to_json(self) -> dict[str, Any]:
        return {
            "RoutingConfig": self.policy.to_json(),
            "CurrentWeights": dict(self.shares),
            "Variants": [
                {
                    "VariantName": name,
                    "Invocations": arm.invocations,
                    "Rewards": arm.rewards,
                    "RewardSum": arm.reward_sum,
                    "MeanReward": arm.mean,
                }
                for name, arm in sorted(self.arms.items())
            ],
            "RewardOutcomes": {o.value: self.outcomes.get(o.value, 0) for o in Outcome},
            "TrackedInferenceIds": len(self.ledger),
        }

    def stats_json(self) -> dict[str, Any]:
        """What survives a restart: the counts (not the id ledger)."""
        return {
            "Arms": {
                n: {"Invocations": a.invocations, "Rewards": a.rewards, "RewardSum": a.reward_sum}
                for n, a in self.arms.items()
            },
            "Outcomes": dict(self.outcomes),
        }

    def load_stats(self, stats: dict[str, Any]) -> None:
        for name, a in (stats.get("Arms") or {}).items():
            self.arms[name] = ArmStats(
                int(a["Invocations"]), int(a["Rewards"]), float(a["RewardSum"])
            )
        self.outcomes.update(stats.get("Outcomes") or {})


class BanditBook:
    """The bandits of all endpoints of one gateway."""

    def __init__(self, clock: Callable[[], float], rng: np.random.Generator) -> None:
        self.clock = clock
        self.rng = rng
        self._bandits: dict[str, Bandit] = {}

    def configure(
        self, endpoint: str, policy: BanditPolicy, stats: dict[str, Any] | None = None
    ) -> Bandit:
        """Set (or change) an endpoint's policy; statistics are kept across changes."""
        bandit = self._bandits.get(endpoint)
        if bandit is None:
            bandit = Bandit(policy, RewardLedger(self.clock))
            if stats:
                bandit.load_stats(stats)
            self._bandits[endpoint] = bandit
        else:
            bandit.policy = policy
            bandit.shares = {}
        return bandit

    def drop(self, endpoint: str) -> None:
        self._bandits.pop(endpoint, None)

    def get(self, endpoint: str) -> Bandit | None:
        return self._bandits.get(endpoint)

    def weights(self, endpoint: str, variants: Iterable[str]) -> dict[str, float] | None:
        """The bandit's weights for these variants (recomputed if the set changed), or
        None when the endpoint routes by its configured weights."""
        bandit = self._bandits.get(endpoint)
        if bandit is None:
            return None
        names = list(variants)
        if set(bandit.shares) != set(names):
            bandit.recompute(names, self.rng)
        return bandit.shares

    def items(self) -> list[tuple[str, Bandit]]:
        return list(self._bandits.items())
