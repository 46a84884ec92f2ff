"""The prediction store's contract: named stores holding one current run of key → prediction.

A *run* is one bulk load (for example last night's transform job). Loading a run is
idempotent (loading a run id that is already current changes nothing) and atomic: readers
see the previous run until the new one is complete, then the new one; never a mix, never a
miss for a key both runs hold. Every backend implements `PredictionStore`.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

from modelhost.errors import PredictionNotFound, ValidationException

# SageMaker's resource-name rule, so a store can be named after the job that fills it.
STORE_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# DynamoDB's limit for a sort key; the others accept more, but one rule for all backends
# keeps a store portable.
MAX_KEY_BYTES = 1024
MAX_BATCH_KEYS = 1000


class ValueFormat(StrEnum):
    """How a stored prediction is written: a CSV output line, or one JSON value."""

    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True)
class RunInfo:
    """A store's current run (as `describe` answers) or the result of a load."""

    store: str
    run_id: str
    key_count: int
    loaded_at_s: float
    value_format: ValueFormat
    # False when `load` found this run already current and wrote nothing (idempotent re-load).
    loaded: bool = True

    def to_api(self) -> dict[str, object]:
        doc = asdict(self)
        return {
            "StoreName": doc["store"],
            "RunId": doc["run_id"],
            "KeyCount": doc["key_count"],
            "LoadedAt": doc["loaded_at_s"],
            "ValueFormat": self.value_format.value,
        }


@dataclass(frozen=True)
class Lookup:
    """What a get answers: the run the value came from and the values found (by key)."""

    run: RunInfo
    values: dict[str, str]


def check_store_name(name: str) -> str:
    if not STORE_NAME_PATTERN.match(name):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'storeName' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: "
            f"{STORE_NAME_PATTERN.pattern}"
        )
    return name


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id):
        raise ValidationException(
            f"1 validation error detected: Value '{run_id}' at 'runId' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {RUN_ID_PATTERN.pattern}"
        )
    return run_id


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ValidationException(f"A key must be a non-empty string, not {key!r}.")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValidationException(
            f"Key '{key[:40]}...' is longer than {MAX_KEY_BYTES} bytes (UTF-8)."
        )
    return key


def check_keys(keys: object) -> list[str]:
    if not isinstance(keys, list):
        raise ValidationException("Keys must be a JSON list of strings.")
    if not 1 <= len(keys) <= MAX_BATCH_KEYS:
        raise ValidationException(
            f"Keys must hold between 1 and {MAX_BATCH_KEYS} keys; it holds {len(keys)}."
        )
    return [check_key(k) for k in keys]


def no_such_store(name: str) -> PredictionNotFound:
    return PredictionNotFound(
        f"Prediction store '{name}' does not exist; load a run into it first "
        "(`modelhost predictions load`)."
    )


class PredictionStore(ABC):
    """A backend: many named stores, each with one current run.

    `inline_ok` says whether a get is cheap and local enough to run on the gateway's event
    loop (an embedded file) rather than in a worker thread (a network round trip).
    """

    inline_ok: bool = False
    kind: str = ""

    @abstractmethod
    def load(
        self,
        store: str,
        run_id: str,
        items: Iterable[tuple[str, str]],
        value_format: ValueFormat,
    ) -> RunInfo:
        """Write every (key, prediction) of `run_id`, then make it the store's current run.

        If `run_id` is already current, nothing is written (`loaded=False`). Left-overs of an
        interrupted load of the same run id are discarded first. A key given twice keeps its
        last value. The previous run is deleted after the switch.
        """

    @abstractmethod
    def get_many(self, store: str, keys: Sequence[str]) -> Lookup:
        """Values of `keys` (missing keys left out), all from one run.

        Raises `PredictionNotFound` if the store has no current run.
        """

    @abstractmethod
    def describe(self, store: str) -> RunInfo | None:
        """The store's current run, or None if the store does not exist."""

    @abstractmethod
    def list_stores(self) -> list[RunInfo]:
        """Every store's current run, by store name."""

    @abstractmethod
    def delete(self, store: str) -> bool:
        """Drop a store and its runs; False if it did not exist."""

    def _loaded_already(self, store: str, run_id: str) -> RunInfo | None:
        """The start of every `load`: the names are valid; the current run, marked not
        loaded, when it is `run_id` already (None: load it)."""
        check_store_name(store)
        check_run_id(run_id)
        current = self.describe(store)
        if current is not None and current.run_id == run_id:
            return RunInfo(**{**current.__dict__, "loaded": False})
        return None

    def get(self, store: str, key: str) -> tuple[RunInfo, str | None]:
        """One key's value in the current run (None if the run has no such key)."""
        found = self.get_many(store, [key])
        return found.run, found.values.get(key)

    async def get_many_async(self, store: str, keys: Sequence[str]) -> Lookup:
        """`get_many` for an event loop: inline if cheap, else in a worker thread.

        Backends with an asyncio client (Redis) override this to skip the thread hop.
        """
        if self.inline_ok:
            return self.get_many(store, keys)
        return await asyncio.to_thread(self.get_many, store, keys)

    async def get_async(self, store: str, key: str) -> tuple[RunInfo, str | None]:
        """`get` for an event loop (see `get_many_async`)."""
        if self.inline_ok:
            return self.get(store, key)
        found = await self.get_many_async(store, [key])
        return found.run, found.values.get(key)

    def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing
        """Release connections and files."""

    async def aclose(self) -> None:
        """`close` from an event loop (also closes asyncio clients)."""
        self.close()
