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

Recency is the order of `touch` calls (an `OrderedDict`), so tests need no clock.
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

    @property
    def evictable(self) -> bool:
        return self.state is EntryState.LOADED and self.in_flight == 0


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

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, not {budget_bytes}")
        self.budget_bytes = budget_bytes
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

    def plan(self, memory_bytes: int) -> Plan:
        """How a new model of `memory_bytes` could be admitted (changes nothing)."""
        if memory_bytes > self.budget_bytes:
            return Plan(Admission.TOO_LARGE)
        over = self.used_bytes + memory_bytes - self.budget_bytes
        if over <= 0:
            return Plan(Admission.FITS)
        evict: list[str] = []
        for entry in self._entries.values():
            if over <= 0:
                break
            if entry.evictable:
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

    def loaded(self, name: str) -> None:
        """The model finished loading: it becomes most recently used and evictable."""
        self._entries[name].state = EntryState.LOADED
        self._entries.move_to_end(name)

    def remove(self, name: str) -> CacheEntry | None:
        """Forget a model (unloaded, or its load failed)."""
        return self._entries.pop(name, None)

    def acquire(self, name: str) -> None:
        """A request starts using the model: pinned, and most recently used."""
        self._entries[name].in_flight += 1
        self._entries.move_to_end(name)

    def release(self, name: str) -> None:
        """A request using the model finished."""
        entry = self._entries.get(name)
        if entry is not None and entry.in_flight > 0:
            entry.in_flight -= 1
