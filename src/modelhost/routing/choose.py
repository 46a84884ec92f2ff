"""Per-invocation decisions as pure functions: which variant, which instance.

Randomness is injected (`rand` returns a float in [0, 1)), so tests are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from modelhost.routing.table import VariantRoute

Rand = Callable[[], float]


class Pickable(Protocol):
    """What least-outstanding picking reads of an instance."""

    @property
    def instance_id(self) -> str: ...

    outstanding: int


P = TypeVar("P", bound=Pickable)


def choose_variant(variants: Sequence[VariantRoute], rand: Rand) -> VariantRoute | None:
    """Pick a variant with probability weight / sum(weights), among variants that have
    instances (a serverless variant always may: it starts them on demand). If every
    serving variant has weight 0, fall back to an even split (SageMaker refuses all-zero
    weights at the API, so this only covers a transient state)."""
    serving = [v for v in variants if v.instances or v.serverless]
    if not serving:
        return None
    total = sum(v.weight for v in serving)
    if total <= 0:
        return serving[int(rand() * len(serving)) % len(serving)]
    point = rand() * total
    for v in serving:
        point -= v.weight
        if point < 0:
            return v
    return serving[-1]


def pick_instance(
    instances: Sequence[P], rand: Rand, exclude: frozenset[str] = frozenset()
) -> P | None:
    """Least outstanding requests; ties broken at random so idle instances share load."""
    best: list[P] = []
    best_load = -1
    for inst in instances:
        if inst.instance_id in exclude:
            continue
        load = inst.outstanding
        if not best or load < best_load:
            best, best_load = [inst], load
        elif load == best_load:
            best.append(inst)
    if not best:
        return None
    if len(best) == 1:
        return best[0]
    return best[int(rand() * len(best)) % len(best)]
