"""Routing decisions are pure functions: tested without processes."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from modelhost.routing.choose import choose_variant, pick_instance
from modelhost.routing.table import EndpointRoute, RoutingTable, VariantRoute


@dataclass
class Fake:
    instance_id: str
    outstanding: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1/{self.instance_id}"


def test_weighted_choice_follows_weights() -> None:
    rng = random.Random(1)
    a = VariantRoute("a", 3.0, (Fake("1"),))
    b = VariantRoute("b", 1.0, (Fake("2"),))
    counts = Counter(choose_variant([a, b], rng.random).name for _ in range(20_000))  # type: ignore[union-attr]
    assert abs(counts["a"] / 20_000 - 0.75) < 0.02


def test_zero_weight_variant_gets_nothing_and_empty_variants_are_skipped() -> None:
    rng = random.Random(2)
    a = VariantRoute("a", 0.0, (Fake("1"),))
    b = VariantRoute("b", 1.0, (Fake("2"),))
    empty = VariantRoute("c", 5.0, ())
    picks = {choose_variant([a, b, empty], rng.random).name for _ in range(1000)}  # type: ignore[union-attr]
    assert picks == {"b"}
    assert choose_variant([empty], rng.random) is None


def test_all_zero_weights_split_evenly() -> None:
    rng = random.Random(3)
    a = VariantRoute("a", 0.0, (Fake("1"),))
    b = VariantRoute("b", 0.0, (Fake("2"),))
    counts = Counter(choose_variant([a, b], rng.random).name for _ in range(2000))  # type: ignore[union-attr]
    assert set(counts) == {"a", "b"}


def test_least_outstanding_wins_and_ties_are_shared() -> None:
    busy, idle1, idle2 = Fake("busy", 3), Fake("i1", 0), Fake("i2", 0)
    rng = random.Random(4)
    picks = Counter(
        pick_instance([busy, idle1, idle2], rng.random).instance_id  # type: ignore[union-attr]
        for _ in range(1000)
    )
    assert picks["busy"] == 0
    assert picks["i1"] > 300 and picks["i2"] > 300


def test_excluded_instances_are_not_picked() -> None:
    a, b = Fake("a", 0), Fake("b", 5)
    assert pick_instance([a, b], random.random, frozenset({"a"})) is b
    assert pick_instance([a], random.random, frozenset({"a"})) is None


def test_routing_table_snapshots_are_immutable() -> None:
    t0 = RoutingTable()
    t1 = t0.with_endpoint(EndpointRoute("e", ()))
    t2 = t1.without_endpoint("e")
    assert "e" not in t0.endpoints and "e" in t1.endpoints and "e" not in t2.endpoints
    assert t2.version == 2
