"""The multi-model cache's bookkeeping: which models hold how much memory, in LRU order.

Pure logic, no I/O and no clock: the caller (`container.multimodel`) loads and unloads
runtimes and asks this class what to do. Rules, as SageMaker's multi-model endpoints
behave:

- A model is admitted when the bytes of every entry (loading or loaded) plus its own fit
  the budget. Otherwise the least recently used *idle* loaded models are evicted until
  it fits. An entry with requests in flight, or still loading, is never evicted.
- A model larger than the whole budget can never fit: `Admission.TOO_LARGE` (the
  container answers 507, which SageMaker documents for "not enough memory").
- When it would fit only by evicting busy entries: `Admission.WAIT` (the caller waits for
  a request to finish and asks again).
- A model that was just loaded is kept for the request that asked for it: it is not
  evictable until its first use, or until `fresh_s` after its load (so a model loaded by
  hand and never invoked does not hold its memory forever). Without this, under more
  concurrent models than the budget holds, a load could evict another request's model
  between that model's load and its invocation, and the two would thrash.
- More requests may say they are coming (`expect_use`: a gateway retrying after its
  model was evicted under it): the model is then kept for that many uses (again at most
  `fresh_s`), so a retry cannot lose its model to the same race twice.

Recency is the order of `acquire` calls (an `OrderedDict`); time is passed in (`now_s`,
any monotonic clock), so tests need no clock.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass


class EntryState(enum.Enum):
    """Lifecycle of one cache entry."""

    LOADING = "Loading"
    LOADED = "Loaded"


class Admission(enum.Enum):
    """The answer to "may a model of N bytes be loaded now?"."""

    FITS = "fits"  # after evicting `Plan.evict`, if any
    WAIT = "wait"  # only busy or loading entries could make room
    TOO_LARGE = "too-large"  # more than the whole budget


@dataclass
class CacheEntry:
    """One model's share of the budget."""

    name: str
    memory_bytes: int
    state: EntryState = EntryState.LOADING
    in_flight: int = 0
    fresh_until_s: float = 0.0  # kept for `expected` more uses or until this time
    expected: int = 0  # uses announced and not yet begun (the load's own request, retries)

    def evictable(self, now_s: float) -> bool:
        return (
            self.state is EntryState.LOADED
            and self.in_flight == 0
            and (self.expected == 0 or now_s >= self.fresh_until_s)
        )


@dataclass(frozen=True)
class Plan:
    """What admitting a model takes: `evict` these (LRU first), when `admission` is FITS."""

    admission: Admission
    evict: tuple[str, ...] = ()


class ModelCache:
    """Memory accounting and LRU order for the models of one instance.

    `budget_bytes` is the memory the models may take together. Entries enter with
    `reserve` (state LOADING, counted against the budget at once so concurrent loads
    cannot overcommit), become LOADED with `loaded`, and leave with `remove`.
    """

    def __init__(self, budget_bytes: int, fresh_s: float = 5.0) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, not {budget_bytes}")
        self.budget_bytes = budget_bytes
        self.fresh_s = fresh_s
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()  # LRU first

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> CacheEntry | None:
        return self._entries.get(name)

    def names(self) -> list[str]:
        """Entry names, least recently used first."""
        return list(self._entries)

    @property
    def used_bytes(self) -> int:
        return sum(e.memory_bytes for e in self._entries.values())

    def plan(self, memory_bytes: int, now_s: float) -> Plan:
        """How a new model of `memory_bytes` could be admitted at `now_s` (changes nothing)."""
        if memory_bytes > self.budget_bytes:
            return Plan(Admission.TOO_LARGE)
        over = self.used_bytes + memory_bytes - self.budget_bytes
        if over <= 0:
            return Plan(Admission.FITS)
        evict: list[str] = []
        for entry in self._entries.values():
            if over <= 0:
                break
            if entry.evictable(now_s):
                evict.append(entry.name)
                over -= entry.memory_bytes
        if over > 0:
            return Plan(Admission.WAIT)
        return Plan(Admission.FITS, tuple(evict))

    def reserve(self, name: str, memory_bytes: int) -> None:
        """Count a model that starts loading (after `plan` said FITS and evictions ran)."""
        if name in self._entries:
            raise KeyError(f"model {name} is already in the cache")
        self._entries[name] = CacheEntry(name, memory_bytes)

    def loaded(self, name: str, now_s: float) -> None:
        """The model finished loading: most recently used, evictable after its first use."""
        entry = self._entries[name]
        entry.state = EntryState.LOADED
        entry.fresh_until_s = now_s + self.fresh_s
        entry.expected += 1  # the request that asked for the load (and any announced)
        self._entries.move_to_end(name)

    def expect_use(self, name: str, now_s: float) -> None:
        """One more request is on its way for this (loaded or loading) model: keep it."""
        entry = self._entries[name]
        entry.expected += 1
        entry.fresh_until_s = now_s + self.fresh_s
        self._entries.move_to_end(name)

    def fresh_until_s(self) -> float | None:
        """When the first still-fresh model becomes evictable (None: none is fresh)."""
        times = [e.fresh_until_s for e in self._entries.values() if e.expected > 0]
        return min(times) if times else None

    def remove(self, name: str) -> CacheEntry | None:
        """Forget a model (unloaded, or its load failed)."""
        return self._entries.pop(name, None)

    def acquire(self, name: str) -> None:
        """A request starts using the model: pinned, and most recently used."""
        entry = self._entries[name]
        entry.in_flight += 1
        if entry.expected > 0:
            entry.expected -= 1
        self._entries.move_to_end(name)

    def release(self, name: str) -> None:
        """A request using the model finished."""
        entry = self._entries.get(name)
        if entry is not None and entry.in_flight > 0:
            entry.in_flight -= 1
