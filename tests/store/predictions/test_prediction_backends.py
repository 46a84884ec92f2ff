"""Every prediction-store backend, on a real server: load, get, re-load, replace, delete."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator

import pytest

from modelhost.errors import PredictionNotFound, ValidationException
from modelhost.store.predictions import PredictionStore, ValueFormat


def rows(run: str, n: int) -> Iterator[tuple[str, str]]:
    return ((f"cust-{i:05d}", f"{run}:{i}") for i in range(n))


def test_load_then_get(backend: PredictionStore, name: str) -> None:
    run = backend.load(name, "night-1", rows("a", 300), ValueFormat.TEXT)
    assert (run.store, run.run_id, run.key_count, run.loaded) == (name, "night-1", 300, True)
    got_run, value = backend.get(name, "cust-00042")
    assert value == "a:42" and got_run.run_id == "night-1"
    assert backend.get(name, "nobody")[1] is None
    found = backend.get_many(name, ["cust-00001", "nobody", "cust-00299", "cust-00001"])
    assert found.values == {"cust-00001": "a:1", "cust-00299": "a:299"}
    assert found.run.run_id == "night-1"
    described = backend.describe(name)
    assert described is not None
    assert (described.run_id, described.key_count) == ("night-1", 300)
    assert described.value_format is ValueFormat.TEXT
    assert name in [r.store for r in backend.list_stores()]


def test_reload_of_the_current_run_is_a_no_op(backend: PredictionStore, name: str) -> None:
    first = backend.load(name, "night-1", rows("a", 50), ValueFormat.JSON)
    again = backend.load(name, "night-1", rows("ignored", 10), ValueFormat.JSON)
    assert again.loaded is False
    assert (again.run_id, again.key_count, again.loaded_at_s) == (
        "night-1", 50, pytest.approx(first.loaded_at_s),
    )  # fmt: skip
    assert backend.get(name, "cust-00003")[1] == "a:3"


def test_new_run_replaces_the_old_one(backend: PredictionStore, name: str) -> None:
    backend.load(name, "night-1", rows("a", 100), ValueFormat.TEXT)
    # Night 2 drops customers 80-99, adds 100-119, and a duplicate key keeps its last value.
    new = [(k, v) for k, v in rows("b", 120) if not 80 <= int(k[5:]) < 100]
    run = backend.load(name, "night-2", [*new, ("cust-00000", "b:last")], ValueFormat.TEXT)
    assert run.key_count == 100
    assert backend.get(name, "cust-00000")[1] == "b:last"
    assert backend.get(name, "cust-00010")[1] == "b:10"
    assert backend.get(name, "cust-00085")[1] is None  # not in the new run
    assert backend.get(name, "cust-00110")[1] == "b:110"
    assert [r.run_id for r in backend.list_stores() if r.store == name] == ["night-2"]


def test_a_failed_load_leaves_the_current_run(backend: PredictionStore, name: str) -> None:
    backend.load(name, "night-1", rows("a", 20), ValueFormat.TEXT)

    def broken() -> Iterator[tuple[str, str]]:
        yield from rows("b", 10)
        raise ValidationException("output 3 has fewer lines than its input")

    with pytest.raises(ValidationException):
        backend.load(name, "night-2", broken(), ValueFormat.TEXT)
    current = backend.describe(name)
    assert current is not None and current.run_id == "night-1"
    assert backend.get(name, "cust-00005")[1] == "a:5"
    # Retrying the same run id after the failure loads it whole.
    assert backend.load(name, "night-2", rows("b", 20), ValueFormat.TEXT).key_count == 20
    assert backend.get(name, "cust-00005")[1] == "b:5"


def test_missing_store_and_bad_names(backend: PredictionStore, name: str) -> None:
    with pytest.raises(PredictionNotFound, match="does not exist"):
        backend.get(name, "k")
    with pytest.raises(PredictionNotFound):
        backend.get_many(name, ["k"])
    assert backend.describe(name) is None
    assert backend.delete(name) is False
    with pytest.raises(ValidationException, match="storeName"):
        backend.load("bad_name!", "r1", rows("a", 1), ValueFormat.TEXT)
    with pytest.raises(ValidationException, match="runId"):
        backend.load(name, "bad run", rows("a", 1), ValueFormat.TEXT)


def test_delete(backend: PredictionStore, name: str) -> None:
    backend.load(name, "night-1", rows("a", 30), ValueFormat.TEXT)
    assert backend.delete(name) is True
    assert backend.describe(name) is None
    with pytest.raises(PredictionNotFound):
        backend.get(name, "cust-00001")
    # The name can be used again, from scratch.
    assert backend.load(name, "night-1", rows("c", 5), ValueFormat.TEXT).loaded is True
    assert backend.get(name, "cust-00001")[1] == "c:1"


def test_atomic_replace_while_lookups_run(backend: PredictionStore, name: str) -> None:
    """Readers see the old run or the new one, whole: never a mix, never a miss.

    Each load stops half way (after the first write batches) until the reader has made
    more lookups, so lookups certainly run against a half-loaded run.
    """
    keys = 400 if backend.kind == "dynamodb" else 25_000  # past one write batch elsewhere
    backend.load(name, "run-0", rows("r0", keys), ValueFormat.TEXT)
    stop = threading.Event()
    problems: list[str] = []
    seen_runs: list[int] = []

    def reader() -> None:
        rng = random.Random(7)
        last = 0
        for _ in range(200_000):  # bounded; stops when the loads are done
            if stop.is_set():
                return
            batch = [f"cust-{rng.randrange(keys):05d}" for _ in range(rng.choice((1, 5)))]
            found = backend.get_many(name, batch)
            run_no = int(found.run.run_id.split("-")[1])
            if len(found.values) != len(set(batch)):
                missed = sorted(set(batch) - set(found.values))
                problems.append(f"miss in {found.run.run_id}: {missed}")
            tags = {v.split(":")[0] for v in found.values.values()}
            if tags != {f"r{run_no}"}:
                problems.append(f"mixed or wrong values {tags} for {found.run.run_id}")
            if run_no < last:
                problems.append(f"went back from run {last} to {run_no}")
            last = run_no
            seen_runs.append(run_no)

    def wait_for_lookups(count: int) -> None:
        target = len(seen_runs) + count
        deadline = time.monotonic() + 30
        while thread.is_alive() and len(seen_runs) < target and time.monotonic() < deadline:
            time.sleep(0.001)

    def paused_rows(run_no: int) -> Iterator[tuple[str, str]]:
        for i, row in enumerate(rows(f"r{run_no}", keys)):
            if i == keys * 6 // 10:
                wait_for_lookups(20)
            yield row

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for run_no in range(1, 4):
            backend.load(name, f"run-{run_no}", paused_rows(run_no), ValueFormat.TEXT)
        deadline = time.monotonic() + 30
        while thread.is_alive() and not (seen_runs and seen_runs[-1] == 3):
            assert time.monotonic() < deadline, "the reader never saw the last run"
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(60)
    assert not problems, problems[:5]
    assert set(seen_runs) >= {0, 1, 2, 3}
    assert backend.get(name, "cust-00007")[1] == "r3:7"


def test_async_lookups(backend: PredictionStore, name: str) -> None:
    """What the gateway calls: Redis through its asyncio client, others inline or in a thread."""
    backend.load(name, "night-1", rows("a", 10), ValueFormat.TEXT)

    async def lookups() -> tuple[str | None, dict[str, str], str | None]:
        try:
            _, one = await backend.get_async(name, "cust-00002")
            many = await backend.get_many_async(name, ["cust-00003", "nobody"])
            _, missing = await backend.get_async(name, "nobody")
            with pytest.raises(PredictionNotFound):
                await backend.get_async("no-such-store", "k")
            return one, many.values, missing
        finally:
            await backend.aclose()

    assert asyncio.run(lookups()) == ("a:2", {"cust-00003": "a:3"}, None)
