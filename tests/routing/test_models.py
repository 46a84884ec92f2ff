"""Model-aware instance picking (multi-model endpoints) as a pure function."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from modelhost.routing.models import pick_for_model


@dataclass
class Fake:
    instance_id: str
    outstanding: int = 0
    models: set[str] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1/{self.instance_id}"


def test_prefers_an_instance_holding_the_model_even_when_busier() -> None:
    a = Fake("a", outstanding=3, models={"CA.tar.gz"})
    b = Fake("b", outstanding=0)
    rng = random.Random(0)
    for _ in range(100):
        assert pick_for_model([a, b], "CA.tar.gz", rng.random, busy_outstanding=8) is a


def test_overloaded_holder_sends_to_the_least_loaded_instance() -> None:
    a = Fake("a", outstanding=8, models={"CA.tar.gz"})
    b = Fake("b", outstanding=2)
    c = Fake("c", outstanding=1)
    assert pick_for_model([a, b, c], "CA.tar.gz", random.random, busy_outstanding=8) is c


def test_a_hot_model_on_several_instances_shares_its_load() -> None:
    a = Fake("a", models={"CA.tar.gz"})
    b = Fake("b", models={"CA.tar.gz"})
    c = Fake("c")
    rng = random.Random(1)
    picks = Counter(
        pick_for_model([a, b, c], "CA.tar.gz", rng.random, 8).instance_id  # type: ignore[union-attr]
        for _ in range(1000)
    )
    assert set(picks) == {"a", "b"} and min(picks.values()) > 400
    b.outstanding = 2
    assert pick_for_model([a, b, c], "CA.tar.gz", rng.random, 8) is a


def test_unknown_model_goes_to_the_least_loaded() -> None:
    a = Fake("a", outstanding=2, models={"NY.tar.gz"})
    b = Fake("b", outstanding=1, models={"TX.tar.gz"})
    assert pick_for_model([a, b], "CA.tar.gz", random.random, 8) is b


def test_excluded_instances_are_skipped() -> None:
    a = Fake("a", models={"CA.tar.gz"})
    b = Fake("b", outstanding=5)
    assert pick_for_model([a, b], "CA.tar.gz", random.random, 8, frozenset({"a"})) is b
    assert pick_for_model([a, b], "CA.tar.gz", random.random, 8, frozenset({"a", "b"})) is None
