"""The multi-model cache's pure bookkeeping: budget, LRU order, pinning."""

from __future__ import annotations

import pytest

from modelhost.container.model_cache import Admission, EntryState, ModelCache, Plan

NOW = 100.0


def _loaded(cache: ModelCache, name: str, size: int) -> None:
    """Load and use once (a used model is no longer fresh)."""
    assert cache.plan(size, NOW).admission is Admission.FITS
    cache.reserve(name, size)
    cache.loaded(name, NOW)
    cache.acquire(name)
    cache.release(name)


def test_fits_without_eviction_under_budget() -> None:
    cache = ModelCache(100)
    _loaded(cache, "a", 40)
    assert cache.plan(60, NOW) == Plan(Admission.FITS)
    assert cache.used_bytes == 40


def test_evicts_least_recently_used_first() -> None:
    cache = ModelCache(100)
    for name in "abc":
        _loaded(cache, name, 30)
    cache.acquire("a")  # a is now the most recently used
    cache.release("a")
    assert cache.plan(30, NOW) == Plan(Admission.FITS, ("b",))
    assert cache.plan(60, NOW) == Plan(Admission.FITS, ("b", "c"))
    assert cache.names() == ["b", "c", "a"]


def test_never_evicts_a_model_with_requests_in_flight() -> None:
    cache = ModelCache(100)
    _loaded(cache, "a", 50)
    _loaded(cache, "b", 50)
    cache.acquire("a")
    assert cache.plan(50, NOW) == Plan(Admission.FITS, ("b",))
    cache.acquire("b")
    assert cache.plan(50, NOW).admission is Admission.WAIT
    cache.release("b")
    assert cache.plan(50, NOW) == Plan(Admission.FITS, ("b",))


def test_loading_entries_count_and_are_not_evictable() -> None:
    cache = ModelCache(100)
    cache.reserve("a", 60)
    assert cache.get("a") is not None and cache.get("a").state is EntryState.LOADING  # type: ignore[union-attr]
    assert cache.plan(50, NOW).admission is Admission.WAIT
    cache.loaded("a", NOW)
    assert cache.plan(50, NOW).admission is Admission.WAIT  # fresh: kept for its first use
    cache.acquire("a")
    cache.release("a")
    assert cache.plan(50, NOW) == Plan(Admission.FITS, ("a",))


def test_a_model_larger_than_the_budget_never_fits() -> None:
    cache = ModelCache(100)
    assert cache.plan(101, NOW).admission is Admission.TOO_LARGE
    assert cache.plan(100, NOW).admission is Admission.FITS


def test_remove_frees_the_budget() -> None:
    cache = ModelCache(100)
    _loaded(cache, "a", 100)
    assert cache.plan(1, NOW).evict == ("a",)
    removed = cache.remove("a")
    assert removed is not None and removed.memory_bytes == 100
    assert cache.used_bytes == 0 and len(cache) == 0 and "a" not in cache
    assert cache.remove("a") is None


def test_reserve_twice_is_a_bug() -> None:
    cache = ModelCache(10)
    cache.reserve("a", 1)
    with pytest.raises(KeyError):
        cache.reserve("a", 1)


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="budget_bytes"):
        ModelCache(0)


def test_bounded_stream_keeps_the_budget() -> None:
    """51 models through a 20-model budget: never over budget, LRU holds the last 20."""
    cache = ModelCache(20 * 7)
    for round_ in range(3):
        for i in range(51):
            name = f"m{i}"
            if name in cache:
                cache.acquire(name)
                cache.release(name)
                continue
            plan = cache.plan(7, NOW)
            assert plan.admission is Admission.FITS, round_
            for victim in plan.evict:
                cache.remove(victim)
            cache.reserve(name, 7)
            cache.loaded(name, NOW)
            cache.acquire(name)
            cache.release(name)
            assert cache.used_bytes <= cache.budget_bytes
    assert cache.names() == [f"m{i}" for i in range(31, 51)]


def test_a_fresh_model_is_kept_for_its_first_use_or_until_it_expires() -> None:
    cache = ModelCache(100, fresh_s=5.0)
    cache.reserve("a", 60)
    cache.loaded("a", NOW)
    assert cache.fresh_until_s() == NOW + 5.0
    assert cache.plan(50, NOW + 1).admission is Admission.WAIT
    assert cache.plan(50, NOW + 5) == Plan(Admission.FITS, ("a",))  # never used: expires
    cache.acquire("a")  # its request arrived: an ordinary entry from now on
    assert cache.fresh_until_s() is None
    cache.release("a")
    assert cache.plan(50, NOW + 1) == Plan(Admission.FITS, ("a",))


def test_announced_uses_keep_a_model_for_each_of_them() -> None:
    """A retry that announces itself (`expect_use`) cannot lose its model to another load
    between its load answer and its invocation, even after the first request used it."""
    cache = ModelCache(100, fresh_s=5.0)
    cache.reserve("a", 60)
    cache.expect_use("a", NOW)  # announced while loading
    cache.loaded("a", NOW)
    cache.acquire("a")
    cache.release("a")  # one of two uses: still kept
    assert cache.plan(50, NOW + 1).admission is Admission.WAIT
    cache.expect_use("a", NOW + 1)  # loaded already: a third request is coming
    cache.acquire("a")
    cache.release("a")
    assert cache.plan(50, NOW + 2).admission is Admission.WAIT
    assert cache.plan(50, NOW + 6) == Plan(Admission.FITS, ("a",))  # it never came: expires
    cache.acquire("a")
    cache.release("a")
    assert cache.fresh_until_s() is None
    assert cache.plan(50, NOW + 2) == Plan(Admission.FITS, ("a",))
